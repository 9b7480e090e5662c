package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// steeringSwitch is `ztdiag -t disable|enable`: an administrator turns
// steering off (the agent steers nothing: every flow goes direct and every
// name to the OS's resolvers, as with a config of no apps) and on again.
// When the tenant's config sets client.tamper_password, turning it off
// needs that password; when it sets client.tamper_override_key, a one-time
// override code the tenant issued for this device does too, and turns
// steering off only until the code's expiry, when the switch turns it on
// again by itself (a timer, armed from Start to Close).
// The switch is saved in the state directory, so that steering stays off
// across restarts until it is turned on or the code expires; so are the
// codes used, each refused again until its expiry. Its lock also orders
// the stores of the snapshot in force (put), so that a config sync and a
// flip of the switch never leave the other's snapshot in force.
type steeringSwitch struct {
	mu    sync.Mutex
	file  string
	off   bool
	since time.Time
	until time.Time            // when an override code's steering-off ends; zero: until enabled
	used  map[string]time.Time // codes used (SHA-256, hex) → their expiry
	clock switchClock
	timer func() bool // stops the armed expiry timer; nil when none
	// onExpire is called (on the timer's goroutine, without the lock) when
	// an override code's time is up.
	onExpire func()
}

// switchClock is the time as the switch sees it; tests give a fake.
type switchClock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

const steeringFile = "steering-off.json"

type steeringRecord struct {
	Off   bool                 `json:"off"`
	Since time.Time            `json:"since"`
	Until time.Time            `json:"until,omitzero"`
	Used  map[string]time.Time `json:"used_codes,omitempty"`
}

func (s *steeringSwitch) load(stateDir string, log *zap.Logger) {
	if s.clock == nil {
		s.clock = realClock{}
	}
	s.file = filepath.Join(stateDir, steeringFile)
	b, err := os.ReadFile(s.file)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var rec steeringRecord
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil {
		// Unreadable: steering stays on, as with no record.
		log.Warn("steering switch record unreadable: steering is on", zap.String("file", s.file), zap.Error(err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.off, s.since, s.until, s.used = rec.Off, rec.Since, rec.Until, rec.Used
	if s.off && !s.until.IsZero() && !s.clock.Now().Before(s.until) {
		s.off, s.until = false, time.Time{} // the code expired while the agent was stopped
		if err := s.saveLocked(); err != nil {
			log.Warn("save the steering switch", zap.Error(err))
		}
	}
}

// arm sets the expiry timer when steering is off until a code's expiry
// (the agent's Start; stop stops it at Close).
func (s *steeringSwitch) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armLocked()
}

// saveLocked records the switch and the codes used; with neither, the
// record is removed.
func (s *steeringSwitch) saveLocked() error {
	now := s.clock.Now()
	for h, exp := range s.used {
		if !now.Before(exp) {
			delete(s.used, h)
		}
	}
	if !s.off && len(s.used) == 0 {
		if err := os.Remove(s.file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, _ := json.Marshal(steeringRecord{Off: s.off, Since: s.since, Until: s.until, Used: s.used})
	if err := os.MkdirAll(filepath.Dir(s.file), 0o700); err != nil {
		return err
	}
	return os.WriteFile(s.file, b, 0o600)
}

// armLocked sets the timer that turns steering on at an override code's
// expiry, or stops it when there is none.
func (s *steeringSwitch) armLocked() {
	if s.timer != nil {
		s.timer()
		s.timer = nil
	}
	if s.off && !s.until.IsZero() && s.onExpire != nil {
		s.timer = s.clock.AfterFunc(s.until.Sub(s.clock.Now()), s.onExpire)
	}
}

// stop stops the expiry timer (the agent's Close).
func (s *steeringSwitch) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer()
		s.timer = nil
	}
}

// expire turns steering on if an override code's time is up, and reports
// whether it did.
func (s *steeringSwitch) expire() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.off || s.until.IsZero() {
		return false, nil
	}
	if s.clock.Now().Before(s.until) {
		s.armLocked() // fired early
		return false, nil
	}
	s.off, s.until, s.timer = false, time.Time{}, nil
	return true, s.saveLocked()
}

// put makes snap the tenant's snapshot of p, and puts in force it or, while
// steering is off, one that steers nothing; it returns the one in force.
func (s *steeringSwitch) put(p *parts, snap *steering.Snapshot) *steering.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.tenantSnap.Store(snap)
	inForce := snap
	if s.off {
		inForce = steerNothing(snap)
	}
	p.snap.Store(inForce)
	return inForce
}

// steerNothing is snap without apps or exceptions; the client settings are
// kept (they compiled with snap, so they compile again).
func steerNothing(snap *steering.Snapshot) *steering.Snapshot {
	off, err := steering.Compile(&steering.Config{Apps: []steering.App{}, Client: *snap.Client()})
	if err != nil {
		off, _ = steering.Compile(&steering.Config{Apps: []steering.App{}})
	}
	return off
}

var (
	errSteeringPassword = errors.New("turning steering off needs the tenant's tamper-protection password (--password)")
	errSteeringCode     = errors.New("turning steering off needs an override code the tenant issued for this device (--code)")
	errNoOverrideKey    = errors.New("the tenant issues no override codes (no client.tamper_override_key)")
	errOverrideUsed     = errors.New("this override code was used already")
)

// refusal reports whether err is a refusal to turn steering off.
func refusal(err error) bool {
	for _, e := range []error{errSteeringPassword, errSteeringCode, errNoOverrideKey, errOverrideUsed,
		steering.ErrTamperPassword, steering.ErrOverrideCode, steering.ErrOverrideExpired} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// set turns steering on or off for p. Off needs what the tenant's rule
// asks: its password, or an override code for this device (then steering
// is off until the code's expiry).
func (s *steeringSwitch) set(p *parts, req ctlapi.SteeringRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tenant := p.tenantSnap.Load()
	until, codeHash, err := s.allowedLocked(*tenant.Client(), p.ident.Load().id.DeviceID, req)
	if err != nil {
		return err
	}
	if s.off == !req.On && codeHash == "" && (req.On || s.until.IsZero()) {
		return nil
	}
	prev := steeringRecord{Off: s.off, Since: s.since, Until: s.until}
	if s.off != !req.On {
		s.since = s.clock.Now()
	}
	s.off, s.until = !req.On, until
	if codeHash != "" {
		if s.used == nil {
			s.used = map[string]time.Time{}
		}
		s.used[codeHash] = until
	}
	if err := s.saveLocked(); err != nil {
		s.off, s.since, s.until = prev.Off, prev.Since, prev.Until // as it was: nothing changes
		delete(s.used, codeHash)
		return fmt.Errorf("save the steering switch: %w", err)
	}
	s.armLocked()
	inForce := tenant
	if s.off {
		inForce = steerNothing(tenant)
	}
	p.snap.Store(inForce)
	return nil
}

// allowedLocked checks req against the tenant's rule; turning steering off
// with a code returns the code's expiry and hash.
func (s *steeringSwitch) allowedLocked(cl steering.ClientConfig, deviceID string, req ctlapi.SteeringRequest) (time.Time, string, error) {
	switch {
	case req.On:
		return time.Time{}, "", nil
	case req.Code != "":
		if cl.TamperOverrideKey == "" {
			return time.Time{}, "", errNoOverrideKey
		}
		until, err := steering.CheckTamperOverride(cl.TamperOverrideKey, req.Code, deviceID, s.clock.Now())
		if err != nil {
			return time.Time{}, "", err
		}
		sum := sha256.Sum256([]byte(req.Code))
		h := hex.EncodeToString(sum[:])
		if _, ok := s.used[h]; ok {
			return time.Time{}, "", errOverrideUsed
		}
		return until, h, nil
	case cl.TamperPassword != "":
		if req.Password == "" {
			if cl.TamperOverrideKey != "" {
				return time.Time{}, "", fmt.Errorf("%w, or its tamper-protection password (--password)", errSteeringCode)
			}
			return time.Time{}, "", errSteeringPassword
		}
		return time.Time{}, "", steering.CheckTamperPassword(cl.TamperPassword, req.Password)
	case cl.TamperOverrideKey != "":
		return time.Time{}, "", errSteeringCode
	}
	return time.Time{}, "", nil
}

// status is the switch and the rule in force, for `ztdiag status` and -f.
func (s *steeringSwitch) status(tenant *steering.Snapshot) ctlapi.SteeringStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ctlapi.SteeringStatus{On: !s.off, Rule: "an administrator may turn steering off (the tenant sets no tamper-protection password)"}
	if s.off {
		st.Since, st.Until = s.since, s.until
	}
	if tenant == nil {
		return st
	}
	cl := tenant.Client()
	st.Password, st.Codes = cl.TamperPassword != "", cl.TamperOverrideKey != ""
	switch {
	case st.Password && st.Codes:
		st.Rule = "turning steering off needs an administrator and the tenant's tamper-protection password, or a one-time override code the tenant issued for this device (off until the code expires)"
	case st.Password:
		st.Rule = "turning steering off needs an administrator and the tenant's tamper-protection password"
	case st.Codes:
		st.Rule = "turning steering off needs an administrator and a one-time override code the tenant issued for this device (off until the code expires)"
	}
	return st
}

// steeringExpired is the switch's onExpire: steering back on for the parts
// in force.
func (a *Agent) steeringExpired() {
	on, err := a.steering.expire()
	if err != nil {
		a.log.Warn("save the steering switch", zap.Error(err))
	}
	if !on {
		return
	}
	a.log.Info("steering turned on again: the override code expired")
	if p, _ := a.current(); p != nil {
		a.steering.put(p, p.tenantSnap.Load())
		p.applied()
	}
}

// serveSteering is `ztdiag -t enable|disable [--password P|--code C]` (root).
func (a *Agent) serveSteering(w http.ResponseWriter, req *http.Request) {
	var sr ctlapi.SteeringRequest
	if err := tenantapi.DecodeStrict(http.MaxBytesReader(w, req.Body, 4<<10), &sr); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("steering request: %w", err))
		return
	}
	p, _ := a.current()
	if p == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("the agent is not running"))
		return
	}
	err := a.steering.set(p, sr)
	switch {
	case refusal(err):
		a.log.Warn("steering switch refused", zap.Bool("on", sr.On), zap.Bool("code", sr.Code != ""), zap.Error(err))
		writeError(w, http.StatusForbidden, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	p.applied()
	st := a.steering.status(p.tenantSnap.Load())
	a.log.Info("steering switched by an administrator", zap.Bool("on", sr.On), zap.Time("until", st.Until))
	writeJSON(w, http.StatusOK, st)
}
