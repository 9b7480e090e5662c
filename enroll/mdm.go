package enroll

import (
	"sort"
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// Where an effective setting came from, as `ztdiag status` shows it. An MDM
// source is "mdm:" followed by its path or registry key.
const (
	SourceInstall = "install"
	SourceDefault = "default"
	SourceMDM     = "mdm:"
)

// Setting is one effective parameter: its key, its value (redacted when a
// secret; "" when unset) and its source.
type Setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// SettingError is an invalid MDM setting: the source, the key and the reason,
// never the value.
type SettingError struct {
	Source, Key, Reason string
}

func (e *SettingError) Error() string {
	return e.Source + ": key " + e.Key + ": " + e.Reason
}

// MergeParams applies the precedence MDM > install parameters > defaults, key by
// key. install holds the validated install parameters (as persisted in the
// state directory); mdm the MDM source's settings (nil when none) and mdmPath
// that source's path. Every MDM key and value is validated as ParseParams
// validates an install parameter; the first problem is a *SettingError and the
// caller keeps its last good settings. Keys starting with "payload" (macOS
// profile metadata) are ignored. The returned settings list every known key in
// ValidParamKeys order with its source, secrets redacted.
func MergeParams(install Params, mdm map[string]string, mdmPath string) (Params, []Setting, error) {
	src := SourceMDM + mdmPath
	vals := paramValues(install)
	from := map[string]string{}
	for k, v := range vals {
		if v != "" {
			from[k] = SourceInstall
		}
	}
	keys := make([]string, 0, len(mdm))
	for k := range mdm {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report problems in a stable order
	for _, k := range keys {
		key := strings.ToLower(k)
		if strings.HasPrefix(key, "payload") {
			continue
		}
		spec, ok := paramSpecs[key]
		if !ok {
			return Params{}, nil, &SettingError{Source: src, Key: truncate(k),
				Reason: "unknown key (valid keys: " + strings.Join(paramOrder, ", ") + ")"}
		}
		norm, err := spec.check(strings.TrimSpace(mdm[k]))
		if err != nil {
			return Params{}, nil, &SettingError{Source: src, Key: key, Reason: redactReason(key, err)}
		}
		vals[key], from[key] = norm, src
	}
	var p Params
	settings := make([]Setting, 0, len(paramOrder))
	for _, k := range paramOrder {
		if vals[k] != "" {
			paramSpecs[k].set(&p, vals[k])
		}
		s := Setting{Key: k, Value: vals[k], Source: from[k]}
		if s.Source == "" {
			s.Source = SourceDefault
		}
		if secretParams[k] {
			s.Value = tenantapi.Secret(s.Value).String()
		}
		settings = append(settings, s)
	}
	return p, settings, nil
}

// secretParams are the keys whose values are Secrets.
var secretParams = map[string]bool{"token": true, "enrollauthtoken": true, "enrollencryptiontoken": true, "userkey": true}

// redactReason words a validation error; for a secret key it never quotes
// the value (today's checks do not, but the rule must not depend on that).
func redactReason(key string, err error) string {
	if secretParams[key] {
		return "invalid value"
	}
	return err.Error()
}

// paramValues is p as key → raw value ("" when unset), secrets included.
func paramValues(p Params) map[string]string {
	return map[string]string{
		"host": p.Host, "token": string(p.Token), "upn": p.UPN, "cacert": p.CACert,
		"enrollauthtoken": string(p.EnrollAuthToken), "enrollencryptiontoken": string(p.EnrollEncryptionToken),
		"installmode": p.InstallMode, "tenant": p.Tenant, "domain": p.Domain, "mode": p.Mode,
		"prelogonuser": p.PreLogonUser, "userkey": string(p.UserKey),
	}
}
