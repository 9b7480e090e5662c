package agent

import (
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
// needs that password. The switch is saved in the state directory, so that
// steering stays off across restarts until it is turned on. Its lock also
// orders the stores of the snapshot in force (put), so that a config sync
// and a flip of the switch never leave the other's snapshot in force.
type steeringSwitch struct {
	mu    sync.Mutex
	file  string
	off   bool
	since time.Time
}

const steeringFile = "steering-off.json"

type steeringRecord struct {
	Off   bool      `json:"off"`
	Since time.Time `json:"since"`
}

func (s *steeringSwitch) load(stateDir string, log *zap.Logger) {
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
	s.off, s.since = rec.Off, rec.Since
}

// saveLocked records the switch; turned on, the record is removed.
func (s *steeringSwitch) saveLocked() error {
	if !s.off {
		if err := os.Remove(s.file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, _ := json.Marshal(steeringRecord{Off: true, Since: s.since})
	if err := os.MkdirAll(filepath.Dir(s.file), 0o700); err != nil {
		return err
	}
	return os.WriteFile(s.file, b, 0o600)
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
	off, err := steering.Compile(&steering.Config{Apps: []steering.App{}, Client: snap.Config().Client})
	if err != nil {
		off, _ = steering.Compile(&steering.Config{Apps: []steering.App{}})
	}
	return off
}

var errSteeringPassword = errors.New("turning steering off needs the tenant's tamper-protection password (--password)")

// set turns steering on or off for p, with password checked against the
// tenant's client.tamper_password when it sets one.
func (s *steeringSwitch) set(p *parts, on bool, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tenant := p.tenantSnap.Load()
	if !on {
		if hash := tenant.Config().Client.TamperPassword; hash != "" {
			if password == "" {
				return errSteeringPassword
			}
			if err := steering.CheckTamperPassword(hash, password); err != nil {
				return err
			}
		}
	}
	if s.off == !on {
		return nil
	}
	prevOff, prevSince := s.off, s.since
	s.off, s.since = !on, time.Now()
	if err := s.saveLocked(); err != nil {
		s.off, s.since = prevOff, prevSince // as it was: nothing changes
		return fmt.Errorf("save the steering switch: %w", err)
	}
	inForce := tenant
	if s.off {
		inForce = steerNothing(tenant)
	}
	p.snap.Store(inForce)
	return nil
}

// status is the switch and the rule in force, for `ztdiag status` and -f.
func (s *steeringSwitch) status(tenant *steering.Snapshot) ctlapi.SteeringStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ctlapi.SteeringStatus{On: !s.off, Rule: "an administrator may turn steering off (the tenant sets no tamper-protection password)"}
	if s.off {
		st.Since = s.since
	}
	if tenant != nil && tenant.Config().Client.TamperPassword != "" {
		st.Rule = "turning steering off needs an administrator and the tenant's tamper-protection password"
		st.Password = true
	}
	return st
}

// serveSteering is `ztdiag -t enable|disable [--password P]` (root).
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
	err := a.steering.set(p, sr.On, sr.Password)
	switch {
	case errors.Is(err, errSteeringPassword), errors.Is(err, steering.ErrTamperPassword):
		a.log.Warn("steering switch refused", zap.Bool("on", sr.On), zap.Error(err))
		writeError(w, http.StatusForbidden, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	p.applied()
	a.log.Info("steering switched by an administrator", zap.Bool("on", sr.On))
	writeJSON(w, http.StatusOK, a.steering.status(p.tenantSnap.Load()))
}
