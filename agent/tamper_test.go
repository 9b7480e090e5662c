package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
)

// TestSteeringSwitch: -t disable makes the agent steer nothing, across a
// restart, until -t enable; a config synced meanwhile is kept for then.
func TestSteeringSwitch(t *testing.T) {
	dir := shortTempDir(t)
	a := newFakeAgent(t, dir, nil)
	a.start(t)
	waitStatus(t, a.Agent, "running", running)
	ctx := context.Background()
	web := ctlapi.MatchRequest{Host: "web.corp.test", Port: 80, Proto: "tcp"}
	action := func(fa *fakeAgent) string {
		t.Helper()
		resp, err := fa.ctl.Match(ctx, web)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Action
	}
	if got := action(a); got != "l7" {
		t.Fatalf("before: %s", got)
	}
	st, err := a.ctl.SetSteering(ctx, ctlapi.SteeringRequest{On: false})
	if err != nil || st.On || st.Password {
		t.Fatalf("disable: %+v, %v", st, err)
	}
	if got := action(a); got != "direct" {
		t.Fatalf("steering off: web.corp.test is %s, want direct", got)
	}
	if s := a.Status().Steering; s == nil || s.On || s.Since.IsZero() {
		t.Fatalf("status: %+v", s)
	}
	// A config synced while off is not put in force, but kept.
	apps := append(fakeApps(), steering.App{ID: "new", Hosts: []string{"new.corp.test"}, TCP: "80"})
	a.cfgs.Set(fakeConfig(apps, steering.ClientConfig{}))
	if _, err := a.ctl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := action(a); got != "direct" {
		t.Fatalf("a sync turned steering on: %s", got)
	}
	a.Close()

	b := newFakeAgent(t, dir, nil)
	b.cfgs.Set(fakeConfig(apps, steering.ClientConfig{}))
	b.start(t)
	waitStatus(t, b.Agent, "running", running)
	if got := action(b); got != "direct" {
		t.Fatalf("after a restart, steering is back on: %s", got)
	}
	if _, err := b.ctl.SetSteering(ctx, ctlapi.SteeringRequest{On: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := b.ctl.Match(ctx, ctlapi.MatchRequest{Host: "new.corp.test", Port: 80, Proto: "tcp"})
	if err != nil || resp.Action != "l7" || action(b) != "l7" {
		t.Fatalf("enabled: %+v, %v", resp, err)
	}
	if _, err := os.Stat(filepath.Join(dir, steeringFile)); !os.IsNotExist(err) {
		t.Fatalf("the switch's record is left after enable: %v", err)
	}
}

// TestSteeringSwitchPassword: when the tenant sets a tamper-protection
// password, turning steering off needs it; turning it on does not.
func TestSteeringSwitchPassword(t *testing.T) {
	hash, err := steering.HashTamperPassword("open sesame")
	if err != nil {
		t.Fatal(err)
	}
	a := newFakeAgent(t, "", nil)
	a.cfgs.Set(fakeConfig(fakeApps(), steering.ClientConfig{TamperPassword: hash}))
	a.start(t)
	waitStatus(t, a.Agent, "running", running)
	ctx := context.Background()
	for _, pw := range []string{"", "open sesame!"} {
		_, err := a.ctl.SetSteering(ctx, ctlapi.SteeringRequest{On: false, Password: pw})
		if !ctlapi.Forbidden(err) {
			t.Fatalf("password %q: %v, want forbidden", pw, err)
		}
	}
	if s := a.Status().Steering; s == nil || !s.On || !s.Password {
		t.Fatalf("after refusals: %+v", s)
	}
	st, err := a.ctl.SetSteering(ctx, ctlapi.SteeringRequest{On: false, Password: "open sesame"})
	if err != nil || st.On {
		t.Fatalf("right password: %+v, %v", st, err)
	}
	if _, err := a.ctl.SetSteering(ctx, ctlapi.SteeringRequest{On: true}); err != nil {
		t.Fatal(err)
	}
	for _, f := range a.bundle(false).Files {
		if contains(f.Data, hash) {
			t.Errorf("the bundle's %s holds the password hash", f.Name)
		}
	}
}

func contains(s, sub string) bool { return sub != "" && strings.Contains(s, sub) }
