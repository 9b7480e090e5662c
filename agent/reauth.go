package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
)

// Periodic re-authentication: when the client configuration sets
// reauth_interval, the user must sign in again through the tenant's IdP flow
// once the interval since their last sign-in has passed. The agent opens the
// sign-in page at once and keeps private access for reauth_grace; when the
// grace period ends without a sign-in, the supervisor suspends the agent
// (running → suspended: the L7 tunnel is closed, steered flows are refused,
// names follow fail-open/fail-close) until the user signs in. A successful
// sign-in is a fresh enrollment: the supervisor saves it and restarts as it.
// Should the tenant turn re-authentication off (or lengthen it) meanwhile,
// the agent resumes by restarting.

const authFile = "auth.json"

type authRecord struct {
	LastSignIn time.Time `json:"last_sign_in"`
}

// loadAuth reads the last sign-in time of the principal; a principal that has
// none (a fresh enrollment, or an upgrade) counts from now.
func (p *parts) loadAuth(fresh bool) {
	now := time.Now()
	last := now
	if !fresh {
		if b, err := os.ReadFile(filepath.Join(p.who.dir, authFile)); err == nil {
			var r authRecord
			if json.Unmarshal(b, &r) == nil && !r.LastSignIn.IsZero() && r.LastSignIn.Before(now.Add(time.Minute)) {
				last = r.LastSignIn
			}
		}
	}
	p.lastAuth.Store(last.UnixNano())
	if fresh || last.Equal(now) {
		if err := saveAuth(p.who.dir, last); err != nil {
			p.log.Warn("save last sign-in time", zap.Error(err))
		}
	}
}

func saveAuth(dir string, t time.Time) error {
	b, _ := json.Marshal(authRecord{LastSignIn: t})
	return atomicfile.Write(filepath.Join(dir, authFile), b, 0o600)
}

func (p *parts) lastSignIn() time.Time {
	return time.Unix(0, p.lastAuth.Load())
}

// reauthPhase is the principal's phase at now.
func (p *parts) reauthPhase(now time.Time) ctlapi.ReauthPhase {
	cl := p.snap.Load().Client()
	interval, grace := cl.ReauthInterval.D(), cl.ReauthGrace.D()
	if interval <= 0 {
		return ctlapi.ReauthOff
	}
	since := now.Sub(p.lastSignIn())
	switch {
	case since < interval:
		return ctlapi.ReauthOK
	case since < interval+grace:
		return ctlapi.ReauthDue
	default:
		return ctlapi.ReauthExpired
	}
}

// reauthTick acts on the phase at now: it opens a sign-in when one is due,
// asks the supervisor to suspend the agent when the grace period has ended,
// and to resume it when a sign-in is no longer due.
func (p *parts) reauthTick(now time.Time) {
	phase := p.reauthPhase(now)
	if (phase == ctlapi.ReauthDue || phase == ctlapi.ReauthExpired) && p.prompting.CompareAndSwap(false, true) {
		p.goWG(p.signInAgain)
	}
	state := p.a.State()
	switch {
	case phase == ctlapi.ReauthExpired && state == ctlapi.StateRunning:
		submit(p.reqs, request{kind: reqSuspend, gen: p.gen, why: "re-authentication grace period over"}, p.ctx.Done())
	case (phase == ctlapi.ReauthOff || phase == ctlapi.ReauthOK) && state == ctlapi.StateSuspended:
		submit(p.reqs, request{kind: reqRestart, gen: p.gen, why: "re-authentication no longer due"}, p.ctx.Done())
	}
}

// signInAgain runs the IdP sign-in in the user's browser; on success it hands
// the new enrollment to the supervisor, which saves it and restarts as it.
func (p *parts) signInAgain(ctx context.Context) {
	p.log.Info("re-authentication due: opening the sign-in page")
	a := p.a
	with := p.who.enrollParams(a.params())
	id, err := a.cfg.Enroller.EnrollIdP(ctx, with, a.cfg.OpenBrowser)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("re-authentication failed; will ask again", zap.Error(err))
		}
		p.prompting.Store(false)
		return
	}
	q := request{kind: reqAdopt, why: "signed in again",
		adopt: &adoption{who: p.who, id: id, with: with, signedIn: time.Now()}}
	if !submit(p.reqs, q, ctx.Done()) {
		p.log.Warn("signed in as the agent stopped; the sign-in is not saved")
	}
}
