package agent

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/agenttest"
	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/netstack"
)

func TestIdentityFollowsLogins(t *testing.T) {
	cases := []struct {
		name   string
		params []string
		// whom the agent runs as with nobody logged in, and with alice
		idle, login         string
		idleKind, loginKind string
	}{
		{"pre-logon then the machine enrollment", []string{"prelogonuser=prelogon@test.example"},
			"prelogon@test.example", "alice@test.example", PrincipalPreLogon, PrincipalMachine},
		{"pre-logon then per-user config", []string{"prelogonuser=prelogon@test.example", "mode=peruserconfig", "domain=test.example"},
			"prelogon@test.example", "alice@test.example", PrincipalPreLogon, PrincipalUser},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newFakeAgent(t, "", nil)
			p, err := a.settings.install.Update(tc.params)
			if err != nil {
				t.Fatal(err)
			}
			a.settings.install = p
			a.start(t)
			as := func(user, kind string) func(ctlapi.Status) bool {
				return func(st ctlapi.Status) bool {
					return running(st) && st.Enrollment.User == user && st.Enrollment.As == kind
				}
			}
			waitStatus(t, a.Agent, "idle identity", as(tc.idle, tc.idleKind))
			a.sess.Login(platform.Session{ID: "2", User: "alice", Active: true, Class: "user"})
			waitStatus(t, a.Agent, "login identity", as(tc.login, tc.loginKind))
			a.sess.Logout("2")
			waitStatus(t, a.Agent, "idle identity again", as(tc.idle, tc.idleKind))
		})
	}
}

// TestReauthSuspends walks the re-authentication cycle of a user who never
// signs in: a prompt when the interval has passed, private access kept for
// the grace period, then the agent suspended (a state status shows, the
// tunnel closed, steered flows refused), and resumed when the tenant turns
// re-authentication off.
func TestReauthSuspends(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	prompted := make(chan struct{}, 10)
	a.enr.SetHook(func(ctx context.Context, c agenttest.Call) error {
		if c.Kind != "idp" {
			return ctx.Err()
		}
		prompted <- struct{}{}
		<-ctx.Done() // the user never signs in
		return ctx.Err()
	})
	a.start(t)
	p := partsOf(t, a.Agent)
	withClient(t, p, func(c *steering.ClientConfig) {
		c.ReauthInterval = steering.Duration(time.Minute)
		c.ReauthGrace = steering.Duration(time.Minute)
	})
	// Time passes by moving the last sign-in into the past, so that the
	// maintenance loop's own ticks (on the real clock) agree with these.
	signedIn := func(ago time.Duration) time.Time {
		p.lastAuth.Store(time.Now().Add(-ago).UnixNano())
		return time.Now()
	}

	now := signedIn(30 * time.Second)
	p.reauthTick(now)
	if got := p.reauthPhase(now); got != ctlapi.ReauthOK || len(prompted) != 0 {
		t.Fatalf("inside the interval: phase %s, sign-in pages opened %d", got, len(prompted))
	}
	p.reauthTick(signedIn(90 * time.Second))
	select {
	case <-prompted:
	case <-time.After(10 * time.Second):
		t.Fatal("no sign-in page when re-authentication fell due")
	}
	if st := a.Status(); st.State != ctlapi.StateRunning {
		t.Fatalf("state during the grace period: %s", st.State)
	}
	p.reauthTick(signedIn(121 * time.Second))
	st := waitStatus(t, a.Agent, "suspended", func(st ctlapi.Status) bool { return st.State == ctlapi.StateSuspended })
	if st.Error == "" || st.Tunnel.State != "closed" || st.Enrollment.DeviceID == "" {
		t.Fatalf("suspended status: error %q, tunnel %s, device %q", st.Error, st.Tunnel.State, st.Enrollment.DeviceID)
	}
	if len(prompted) != 0 {
		t.Fatal("a second sign-in page while one is open")
	}
	// Over the control API too: `ztdiag status` shows it.
	if viaSocket, err := a.ctl.Status(context.Background()); err != nil || viaSocket.State != ctlapi.StateSuspended {
		t.Fatalf("status over the socket: %s, %v", viaSocket.State, err)
	}
	if _, owned := (dnsPolicy{p}).Lookup("web.corp.test"); owned {
		t.Fatal("private names still answered with stubs while suspended (fail-open)")
	}
	addr, err := p.stubs.v4.Assign("web.corp.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.handleTCP(context.Background(), netstack.Flow{Proto: netstack.ProtoTCP,
		Src: netip.MustParseAddrPort("100.64.0.1:40000"), Dst: netip.AddrPortFrom(addr, 80)})
	if !errors.Is(err, errSuspended) {
		t.Fatalf("steered flow while suspended: %v, want %v", err, errSuspended)
	}

	// The tenant turns re-authentication off: private access resumes.
	withClient(t, p, func(c *steering.ClientConfig) { c.ReauthInterval = 0 })
	p.reauthTick(time.Now())
	waitStatus(t, a.Agent, "resumed", running)
	if st := a.Status(); st.Tunnel.State == "closed" {
		t.Fatal("resumed with the tunnel closed")
	}
}

// TestReauthSignIn: a sign-in is a fresh enrollment, saved with its time,
// and the agent restarts as it.
func TestReauthSignIn(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	old := a.Status().Enrollment.DeviceID
	p := partsOf(t, a.Agent)
	withClient(t, p, func(c *steering.ClientConfig) { c.ReauthInterval = steering.Duration(time.Minute) })
	// The last sign-in was two minutes ago: due and past grace by the real
	// clock too, so the maintenance loop's own ticks agree with this one.
	p.lastAuth.Store(time.Now().Add(-2 * time.Minute).UnixNano())
	p.reauthTick(time.Now())
	st := waitStatus(t, a.Agent, "running as the signed-in device", func(st ctlapi.Status) bool {
		return running(st) && st.Enrollment.DeviceID != old && st.Enrollment.DeviceID != ""
	})
	if time.Since(st.Reauth.LastSignIn) > time.Minute {
		t.Fatalf("last sign-in not updated: %s", st.Reauth.LastSignIn)
	}
	if b, err := os.ReadFile(filepath.Join(a.cfg.StateDir, authFile)); err != nil || len(b) == 0 {
		t.Fatalf("sign-in time not saved: %v", err)
	}
	if a.enr.Count("idp") != 1 {
		t.Fatalf("%d sign-ins, want 1", a.enr.Count("idp"))
	}
}

// TestRestartKeepsSuspension: a restart (here a login switch) does not lift
// an overdue re-authentication.
func TestRestartKeepsSuspension(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.enr.SetHook(func(ctx context.Context, c agenttest.Call) error {
		if c.Kind == "idp" {
			<-ctx.Done()
		}
		return ctx.Err()
	})
	a.cfgs.Set(fakeConfig(fakeApps(), steering.ClientConfig{ReauthInterval: steering.Duration(time.Minute)}))
	a.start(t)
	p := partsOf(t, a.Agent)
	// The last sign-in was long ago.
	if err := saveAuth(p.who.dir, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	p.reauthTick(time.Now().Add(time.Hour))
	waitStatus(t, a.Agent, "suspended", func(st ctlapi.Status) bool { return st.State == ctlapi.StateSuspended })
	ask(a.Agent, request{kind: reqRestart, why: "test"})
	waitStatus(t, a.Agent, "suspended after a restart", func(st ctlapi.Status) bool {
		return st.State == ctlapi.StateSuspended && partsOfOrNil(a.Agent) != p
	})
}

func partsOfOrNil(a *Agent) *parts {
	p, _ := a.current()
	return p
}

func TestCertificateRenewal(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	p := partsOf(t, a.Agent)
	old := p.ident.Load().id
	if err := p.renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := p.ident.Load().id
	if id == old || id.DeviceID != old.DeviceID || string(id.Cert.Certificate[0]) == string(old.Cert.Certificate[0]) {
		t.Fatal("renewal did not put a new certificate for the same device in force")
	}
	// A renewal of an identity that was replaced meanwhile is dropped.
	reply := make(chan error, 1)
	ask(a.Agent, request{kind: reqRenewed, gen: p.gen, renew: &renewal{old: old, id: old}, reply: reply})
	if err := <-reply; !errors.Is(err, errStale) {
		t.Fatalf("stale renewal: %v, want %v", err, errStale)
	}
}
