package enroll

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// Params are the install-style key=value parameters an administrator passes to
// `ztagent install` or `ztagent run` (or pushes by MDM), with the names silent
// installs already use. Secrets are of type Secret and print redacted.
type Params struct {
	Host                  string           // tenant API: host[:port] or https:// URL
	Token                 tenantapi.Secret // org key
	UPN                   string           // overrides the logged-in user's UPN
	CACert                string           // path to the tenant CA PEM; else system roots
	EnrollAuthToken       tenantapi.Secret // secure-enrollment auth token
	EnrollEncryptionToken tenantapi.Secret // secure-enrollment encryption token
	InstallMode           string           // "" (UPN) or "IDP"
	Tenant                string           // tenant name, for IdP enrollment
	Domain                string           // user's domain, for IdP enrollment
	Mode                  string           // "" or "peruserconfig"
	PreLogonUser          string           // identity used before anyone logs in
	UserKey               tenantapi.Secret // one-time email-invitation key
}

// paramSpec describes one key: where it goes and how it is checked.
type paramSpec struct {
	set   func(p *Params, v string)
	check func(v string) (string, error) // returns the normalised value
}

var paramSpecs = map[string]paramSpec{
	"host":                  {func(p *Params, v string) { p.Host = v }, checkHostParam},
	"token":                 {func(p *Params, v string) { p.Token = tenantapi.Secret(v) }, nonEmpty},
	"upn":                   {func(p *Params, v string) { p.UPN = v }, checkUPNParam},
	"cacert":                {func(p *Params, v string) { p.CACert = v }, nonEmpty},
	"enrollauthtoken":       {func(p *Params, v string) { p.EnrollAuthToken = tenantapi.Secret(v) }, nonEmpty},
	"enrollencryptiontoken": {func(p *Params, v string) { p.EnrollEncryptionToken = tenantapi.Secret(v) }, nonEmpty},
	"installmode":           {func(p *Params, v string) { p.InstallMode = v }, oneOf("IDP")},
	"tenant":                {func(p *Params, v string) { p.Tenant = v }, checkTenantParam},
	"domain":                {func(p *Params, v string) { p.Domain = v }, checkDomainParam},
	"mode":                  {func(p *Params, v string) { p.Mode = v }, oneOf("peruserconfig")},
	"prelogonuser":          {func(p *Params, v string) { p.PreLogonUser = v }, nonEmpty},
	"userkey":               {func(p *Params, v string) { p.UserKey = tenantapi.Secret(v) }, nonEmpty},
}

// paramOrder is the order of ValidParamKeys and String.
var paramOrder = []string{"host", "token", "upn", "cacert", "enrollauthtoken",
	"enrollencryptiontoken", "installmode", "tenant", "domain", "mode", "prelogonuser", "userkey"}

// ValidParamKeys lists the accepted parameter names.
func ValidParamKeys() []string { return append([]string(nil), paramOrder...) }

// ParseParams parses key=value arguments. Keys are case-insensitive (installers
// often upper-case them); a key may appear once. An unknown key is an error that
// names it and lists the valid ones. Errors never contain a secret's value.
func ParseParams(args []string) (Params, error) {
	var p Params
	seen := map[string]bool{}
	for i, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		if !ok {
			// The argument is not echoed: it may be a secret typed without its key.
			return Params{}, fmt.Errorf("parameter %d is not key=value (valid keys: %s)",
				i+1, strings.Join(paramOrder, ", "))
		}
		spec, known := paramSpecs[key]
		if !known {
			return Params{}, fmt.Errorf("unknown parameter %q (valid keys: %s)",
				truncate(k), strings.Join(paramOrder, ", "))
		}
		if seen[key] {
			return Params{}, fmt.Errorf("parameter %s= given twice", key)
		}
		seen[key] = true
		norm, err := spec.check(strings.TrimSpace(v))
		if err != nil {
			return Params{}, fmt.Errorf("parameter %s=: %w", key, err)
		}
		spec.set(&p, norm)
	}
	return p, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// String lists the set parameters as key=value with secrets redacted.
func (p Params) String() string {
	vals := map[string]string{
		"host": p.Host, "token": p.Token.String(), "upn": p.UPN, "cacert": p.CACert,
		"enrollauthtoken": p.EnrollAuthToken.String(), "enrollencryptiontoken": p.EnrollEncryptionToken.String(),
		"installmode": p.InstallMode, "tenant": p.Tenant, "domain": p.Domain, "mode": p.Mode,
		"prelogonuser": p.PreLogonUser, "userkey": p.UserKey.String(),
	}
	var parts []string
	for _, k := range paramOrder {
		if vals[k] != "" {
			parts = append(parts, k+"="+vals[k])
		}
	}
	return strings.Join(parts, " ")
}

// TenantURL returns the tenant API's base URL from host=: "https://host[:port]"
// plus any path, without a trailing slash.
func (p Params) TenantURL() (string, error) {
	if p.Host == "" {
		return "", errors.New("host= is not set: pass the tenant API's host, e.g. host=tenant.example.com")
	}
	return tenantapi.BaseURL(p.Host)
}

func checkHostParam(v string) (string, error) {
	if v == "" {
		return "", errors.New("empty")
	}
	if _, err := tenantapi.BaseURL(v); err != nil {
		return "", err
	}
	return v, nil
}

func nonEmpty(v string) (string, error) {
	if v == "" {
		return "", errors.New("empty")
	}
	return v, nil
}

func oneOf(allowed ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		for _, a := range allowed {
			if strings.EqualFold(v, a) {
				return a, nil
			}
		}
		return "", fmt.Errorf("%q is not one of %s", truncate(v), strings.Join(allowed, ", "))
	}
}

func checkUPNParam(v string) (string, error) {
	at := strings.LastIndexByte(v, '@')
	if at <= 0 || at == len(v)-1 || strings.ContainsAny(v, " \t\r\n/?#") {
		return "", fmt.Errorf("%q is not a UPN (user@domain)", truncate(v))
	}
	return v, nil
}

func checkTenantParam(v string) (string, error) {
	if v == "" || !tenantapi.ValidTenantName(strings.ToLower(v)) {
		return "", fmt.Errorf("%q is not a tenant name (letters, digits and '-')", truncate(v))
	}
	return strings.ToLower(v), nil
}

func checkDomainParam(v string) (string, error) {
	h, err := steering.ParseHost(v)
	if err != nil || h.Kind != steering.HostName {
		return "", fmt.Errorf("%q is not a DNS domain", truncate(v))
	}
	return h.Name, nil
}
