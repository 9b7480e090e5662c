package agent

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/platform"
)

// Whom the agent runs as. By default one enrollment serves the machine (the
// install parameters' user). With prelogonuser= the pre-logon identity carries
// the tunnel while nobody is logged in, and the agent switches to the user's
// enrollment at login and back at logout. With mode=peruserconfig each user
// who logs in gets an enrollment and config of their own, kept in a state
// directory of their own.

// Principal kinds.
const (
	PrincipalMachine  = "machine"
	PrincipalUser     = "user"
	PrincipalPreLogon = "prelogon"
)

type principal struct {
	kind string
	upn  string // for user and pre-logon principals
	dir  string // identity, cached config and stub assignments
}

// wantPrincipal decides whom the agent should run as now. When sessions
// cannot be read, the agent stays as it is.
func (a *Agent) wantPrincipal() principal {
	machine := principal{kind: PrincipalMachine, dir: a.cfg.StateDir}
	p := a.params()
	if p.Mode != "peruserconfig" && p.PreLogonUser == "" {
		return machine
	}
	sessions, err := a.cfg.Sessions.Current()
	if err != nil {
		a.log.Warn("cannot list login sessions; keeping the current identity", zap.Error(err))
		if cur := a.whom(); cur.kind != "" {
			return cur
		}
		return machine
	}
	if s, ok := platform.ConsoleUser(sessions); ok {
		if p.Mode != "peruserconfig" {
			return machine
		}
		upn, err := enroll.UPNFor(s.User, p)
		if err != nil {
			a.log.Warn("logged-in user has no UPN; using the machine enrollment", zap.String("login", s.User), zap.Error(err))
			return machine
		}
		return principal{kind: PrincipalUser, upn: upn, dir: enroll.UserStateDir(a.cfg.StateDir, upn)}
	}
	if p.PreLogonUser != "" {
		return principal{kind: PrincipalPreLogon, upn: p.PreLogonUser, dir: enroll.UserStateDir(a.cfg.StateDir, p.PreLogonUser)}
	}
	return machine
}

// whom returns the principal the agent runs (or last ran) as.
func (a *Agent) whom() principal {
	if p := a.who.Load(); p != nil {
		return *p
	}
	return principal{}
}

// enrollAs enrolls the principal with settings p.
func (a *Agent) enrollAs(ctx context.Context, who principal, p enroll.Params) (*enroll.Identity, error) {
	switch who.kind {
	case PrincipalPreLogon:
		return enroll.EnrollPreLogon(ctx, p, a.log)
	case PrincipalUser:
		p.UPN = who.upn
	}
	return enroll.Enroll(ctx, p, a.cfg.OpenBrowser, a.log)
}

// watchSessions switches identity when a user logs in or out. The switch
// (a restart of the agent's parts) runs outside the agent's goroutine group,
// which it stops and starts again.
func (a *Agent) watchSessions(ctx context.Context) {
	t := time.NewTicker(a.cfg.SessionPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		want := a.wantPrincipal()
		if want == a.whom() || !a.switching.CompareAndSwap(false, true) {
			continue
		}
		a.log.Info("login sessions changed: switching identity",
			zap.String("from", a.whom().kind+" "+a.whom().upn), zap.String("to", want.kind+" "+want.upn))
		go func() {
			a.lifeMu.Lock()
			defer a.lifeMu.Unlock()
			defer a.switching.Store(false)
			a.restartLocked("login sessions changed", nil) // the start picks the principal
		}()
	}
}

// startTimeout bounds a restart the agent does by itself.
const startTimeout = time.Minute
