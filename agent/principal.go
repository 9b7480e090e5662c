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

// enrollParams are the settings p as this principal enrolls with them.
func (who principal) enrollParams(p enroll.Params) enroll.Params {
	if who.kind == PrincipalUser {
		p.UPN = who.upn
	}
	return p
}

// wantPrincipal decides whom the agent should run as now. When sessions
// cannot be read, the agent stays as cur (the machine when it runs as no one
// yet).
func (a *Agent) wantPrincipal(cur principal) principal {
	machine := principal{kind: PrincipalMachine, dir: a.cfg.StateDir}
	p := a.params()
	if p.Mode != "peruserconfig" && p.PreLogonUser == "" {
		return machine
	}
	sessions, err := a.cfg.Sessions.Current()
	if err != nil {
		a.log.Warn("cannot list login sessions; keeping the current identity", zap.Error(err))
		if cur.kind != "" {
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

// enrollAs enrolls the principal with settings p (as enrollParams made them).
func (a *Agent) enrollAs(ctx context.Context, who principal, p enroll.Params) (*enroll.Identity, error) {
	if who.kind == PrincipalPreLogon {
		return a.cfg.Enroller.EnrollPreLogon(ctx, p)
	}
	return a.cfg.Enroller.Enroll(ctx, p, a.cfg.OpenBrowser)
}

// watchSessions asks the supervisor for a restart when a login or logout
// changes whom the agent should run as; the start picks the principal. It
// returns once it has asked: these parts are about to be replaced.
func (p *parts) watchSessions(ctx context.Context) {
	t := time.NewTicker(p.a.cfg.SessionPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		want := p.a.wantPrincipal(p.who)
		if want == p.who {
			continue
		}
		p.log.Info("login sessions changed: switching identity",
			zap.String("from", p.who.kind+" "+p.who.upn), zap.String("to", want.kind+" "+want.upn))
		if submit(p.reqs, request{kind: reqRestart, gen: p.gen, why: "login sessions changed"}, ctx.Done()) {
			return
		}
	}
}
