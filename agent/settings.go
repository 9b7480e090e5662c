package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/platform/atomicfile"
)

// settingsState is the install parameters and the effective settings made
// from them: MDM over install parameters over defaults. mu guards them: MDM
// polls (maintain) and a saved re-enrollment (the supervisor) write them,
// starts, the session watcher and status read them.
type settingsState struct {
	mu       sync.Mutex
	install  enroll.Params
	eff      enroll.Params
	settings []enroll.Setting // nil until the first refresh
}

func (s *settingsState) setInstall(p enroll.Params) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.install, s.settings = p, nil // recomputed at the next refresh
}

func (s *settingsState) get() (install, eff enroll.Params, settings []enroll.Setting) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.install, s.eff, s.settings
}

func (a *Agent) params() enroll.Params {
	_, eff, _ := a.settings.get()
	return eff
}

// refreshSettings re-reads the MDM source and merges it over the install
// parameters. An invalid MDM source or value is reported (path, key, reason)
// and the last good settings stay in force. It reports whether they changed.
func (a *Agent) refreshSettings() bool {
	mdm, changed, err := a.mdm.Poll()
	path := a.mdm.Source().Path()
	if err != nil {
		a.log.Error("MDM configuration is invalid; the last good settings stay in force", zap.String("path", path), zap.Error(err))
	}
	s := &a.settings
	s.mu.Lock()
	defer s.mu.Unlock()
	if !changed && s.settings != nil {
		return false
	}
	p, settings, err := enroll.MergeParams(s.install, mdm, path)
	if err != nil {
		a.log.Error("MDM setting is invalid; the last good settings stay in force", zap.String("path", path), zap.Error(err))
		if s.settings != nil {
			return false
		}
		p, settings, _ = enroll.MergeParams(s.install, nil, path)
	}
	s.eff, s.settings = p, settings
	if changed && len(mdm) > 0 {
		a.log.Info("MDM settings applied", zap.String("path", path), zap.Int("keys", len(mdm)))
	}
	return true
}

// mdmSettings returns the MDM settings in force (the last good ones).
func (a *Agent) mdmSettings() map[string]string {
	m, _, err := a.mdm.Poll()
	if err != nil {
		a.log.Warn("MDM configuration is invalid; using the last good settings", zap.String("path", a.mdm.Source().Path()), zap.Error(err))
	}
	return m
}

// Enrollment-time settings. These shape an enrollment (where the tenant is,
// whom to enroll, which tokens and CA to use) and nothing after it: a change
// applies at the next enrollment. The agent does not re-enroll by itself
// when MDM changes one (a mistaken push would re-enroll a whole fleet, and
// secure-enrollment tokens are often single-use); status shows the change as
// pending until an administrator runs `ztdiag -e`. The other settings (mode,
// prelogonuser) apply at once, through the session watcher.
const pendingNote = "applies at the next enrollment: run ztdiag -e to apply now"

// enrollmentValues returns the enrollment-time settings of p by key,
// secrets included (they are only ever fingerprinted).
func enrollmentValues(p enroll.Params) map[string]string {
	return map[string]string{
		"host": p.Host, "token": string(p.Token), "upn": p.UPN, "cacert": p.CACert,
		"enrollauthtoken": string(p.EnrollAuthToken), "enrollencryptiontoken": string(p.EnrollEncryptionToken),
		"installmode": p.InstallMode, "tenant": p.Tenant, "domain": p.Domain, "userkey": string(p.UserKey),
	}
}

// enrolledWithFile records, per principal, fingerprints of the
// enrollment-time settings its identity was enrolled with.
const enrolledWithFile = "enrolled-with.json"

func fingerprints(p enroll.Params) map[string]string {
	out := map[string]string{}
	for k, v := range enrollmentValues(p) {
		if v != "" {
			sum := sha256.Sum256([]byte(k + "=" + v))
			out[k] = hex.EncodeToString(sum[:])
		}
	}
	return out
}

func saveEnrolledWith(dir string, p enroll.Params) error {
	b, err := json.MarshalIndent(fingerprints(p), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, enrolledWithFile), b, 0o600)
}

// loadEnrolledWith reads the record of dir. An identity enrolled before the
// agent kept one is taken to have been enrolled with p, the settings in
// force now, and that is recorded.
func loadEnrolledWith(dir string, p enroll.Params, log *zap.Logger) map[string]string {
	b, err := os.ReadFile(filepath.Join(dir, enrolledWithFile))
	var m map[string]string
	if err == nil && json.Unmarshal(b, &m) == nil && m != nil {
		return m
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("read the enrollment's settings record", zap.Error(err))
	}
	if err := saveEnrolledWith(dir, p); err != nil {
		log.Warn("record the enrollment's settings", zap.Error(err))
	}
	return fingerprints(p)
}

// pendingSettings renders the effective settings for status, marking each
// enrollment-time setting whose value differs from the one the running
// identity was enrolled with. A setting that was removed is not marked: it
// changes nothing for the running enrollment.
func pendingSettings(settings []enroll.Setting, eff enroll.Params, enrolledWith map[string]string) []ctlapi.Setting {
	now := fingerprints(eff)
	out := make([]ctlapi.Setting, 0, len(settings))
	for _, s := range settings {
		cs := ctlapi.Setting{Key: s.Key, Value: s.Value, Source: s.Source}
		if fp, ok := now[s.Key]; ok && enrolledWith != nil && fp != enrolledWith[s.Key] {
			cs.Pending = pendingNote
		}
		out = append(out, cs)
	}
	return out
}
