package agent

import (
	"context"
	"encoding/json"
	"github.com/ztagent/ztagent/agent/ctlapi"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/platform"
)

// Periodic re-authentication: when the client configuration sets
// reauth_interval, the user must sign in again through the tenant's IdP flow
// once the interval since their last sign-in has passed. The agent opens the
// sign-in page at once and keeps the tunnel for reauth_grace; when the grace
// period ends without a sign-in, it tears the L7 tunnel down (private flows are
// then reset, and names follow fail-open/fail-close) until the user signs in.
// A successful sign-in is a fresh enrollment: the agent restarts as it.

const authFile = "auth.json"

// reauthState is the last sign-in, persisted per principal, and the agent's
// progress through the cycle.
type reauthState struct {
	mu        sync.Mutex
	last      time.Time
	prompting atomic.Bool // a sign-in is waiting in the browser
	expired   atomic.Bool // the tunnel was torn down
}

type authRecord struct {
	LastSignIn time.Time `json:"last_sign_in"`
}

// loadAuth reads the last sign-in time of the current principal; an agent
// that has none (a fresh enrollment, or an upgrade) counts from now.
func (a *Agent) loadAuth(fresh bool) {
	now := time.Now()
	last := now
	if !fresh {
		if b, err := os.ReadFile(filepath.Join(a.whom().dir, authFile)); err == nil {
			var r authRecord
			if json.Unmarshal(b, &r) == nil && !r.LastSignIn.IsZero() && r.LastSignIn.Before(now.Add(time.Minute)) {
				last = r.LastSignIn
			}
		}
	}
	a.setLastSignIn(last)
	a.reauth.prompting.Store(false)
	a.reauth.expired.Store(false)
}

func (a *Agent) setLastSignIn(t time.Time) {
	a.reauth.mu.Lock()
	a.reauth.last = t
	a.reauth.mu.Unlock()
	b, _ := json.Marshal(authRecord{LastSignIn: t})
	if err := platform.WriteFileAtomic(filepath.Join(a.whom().dir, authFile), b, 0o600); err != nil {
		a.log.Warn("save last sign-in time", zap.Error(err))
	}
}

func (a *Agent) lastSignIn() time.Time {
	a.reauth.mu.Lock()
	defer a.reauth.mu.Unlock()
	return a.reauth.last
}

// reauthPhase is the current principal's phase at now.
func (a *Agent) reauthPhase(now time.Time) ctlapi.ReauthPhase {
	cl := a.snap.Load().Config().Client
	interval, grace := cl.ReauthInterval.D(), cl.ReauthGrace.D()
	if interval <= 0 {
		return ctlapi.ReauthOff
	}
	since := now.Sub(a.lastSignIn())
	switch {
	case since < interval:
		return ctlapi.ReauthOK
	case since < interval+grace:
		return ctlapi.ReauthDue
	default:
		return ctlapi.ReauthExpired
	}
}

// reauthTick acts on the phase at now: it starts a sign-in when one is due,
// and tears the tunnel down when the grace period has ended.
func (a *Agent) reauthTick(now time.Time) {
	ctx := a.runCtx
	phase := a.reauthPhase(now)
	switch phase {
	case ctlapi.ReauthDue, ctlapi.ReauthExpired:
		if a.reauth.prompting.CompareAndSwap(false, true) {
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.signInAgain(ctx)
			}()
		}
	}
	if phase == ctlapi.ReauthExpired && a.reauth.expired.CompareAndSwap(false, true) {
		a.log.Warn("re-authentication grace period over: private access is suspended until the user signs in",
			zap.Time("last_sign_in", a.lastSignIn()))
		a.l7.Close()
	}
}

// signInAgain runs the IdP sign-in in the user's browser; on success the
// agent restarts as the new enrollment (outside its goroutine group, which
// the restart stops).
func (a *Agent) signInAgain(ctx context.Context) {
	a.log.Info("re-authentication due: opening the sign-in page")
	id, err := enroll.EnrollIdP(ctx, a.params(), a.cfg.OpenBrowser, a.log)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("re-authentication failed; will ask again", zap.Error(err))
		}
		a.reauth.prompting.Store(false)
		return
	}
	a.setLastSignIn(time.Now())
	go func() {
		a.lifeMu.Lock()
		defer a.lifeMu.Unlock()
		a.restartAs(a.cfg.Params, id)
	}()
}
