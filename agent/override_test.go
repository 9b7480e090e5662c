package agent

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
)

// fakeClock is a switchClock whose time moves by Advance, which runs the
// timers that come due.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// TestOverrideCode: with client.tamper_override_key, turning steering off
// needs a code issued for this device; it is off until the code expires,
// across a restart, then on again by itself; a code works once.
func TestOverrideCode(t *testing.T) {
	pub, priv := steering.NewTamperOverrideKey()
	dir := shortTempDir(t)
	clock := &fakeClock{now: time.Now()}
	a := newFakeAgent(t, dir, nil)
	a.steering.clock = clock
	a.cfgs.Set(fakeConfig(fakeApps(), steering.ClientConfig{TamperOverrideKey: pub}))
	a.start(t)
	waitStatus(t, a.Agent, "running", running)
	ctx := context.Background()
	dev := a.Status().Enrollment.DeviceID
	issue := func(device string, d time.Duration) string {
		t.Helper()
		c, err := steering.IssueTamperOverride(priv, device, clock.Now().Add(d).Truncate(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	action := func(fa *fakeAgent) string {
		t.Helper()
		resp, err := fa.ctl.Match(ctx, ctlapi.MatchRequest{Host: "web.corp.test", Port: 80, Proto: "tcp"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Action
	}
	for name, req := range map[string]ctlapi.SteeringRequest{
		"no code":        {},
		"a password":     {Password: "open sesame"},
		"another device": {Code: issue("dev-other", time.Hour)},
		"expired":        {Code: issue(dev, -time.Minute)},
		"garbage":        {Code: "AAAA"},
	} {
		if _, err := a.ctl.SetSteering(ctx, req); !ctlapi.Forbidden(err) {
			t.Fatalf("%s: %v, want forbidden", name, err)
		}
	}
	if s := a.Status().Steering; !s.On || !s.Codes || s.Password {
		t.Fatalf("status after refusals: %+v", s)
	}

	code := issue(dev, time.Hour)
	st, err := a.ctl.SetSteering(ctx, ctlapi.SteeringRequest{Code: code})
	if err != nil || st.On || !st.Until.Equal(clock.Now().Add(time.Hour).Truncate(time.Second)) {
		t.Fatalf("disable with a code: %+v, %v", st, err)
	}
	if got := action(a); got != "direct" {
		t.Fatalf("steering off: %s", got)
	}
	if _, err := a.ctl.SetSteering(ctx, ctlapi.SteeringRequest{On: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ctl.SetSteering(ctx, ctlapi.SteeringRequest{Code: code}); !ctlapi.Forbidden(err) {
		t.Fatalf("a code used twice: %v, want forbidden", err)
	}
	code2 := issue(dev, 2*time.Hour)
	if _, err := a.ctl.SetSteering(ctx, ctlapi.SteeringRequest{Code: code2}); err != nil {
		t.Fatal(err)
	}
	a.Close()

	// Across a restart: still off until the code's expiry, then on again.
	b := newFakeAgent(t, dir, nil)
	b.steering.clock = clock
	b.cfgs.Set(fakeConfig(fakeApps(), steering.ClientConfig{TamperOverrideKey: pub}))
	b.start(t)
	waitStatus(t, b.Agent, "running", running)
	if got, s := action(b), b.Status().Steering; got != "direct" || s.On || s.Until.IsZero() {
		t.Fatalf("after a restart: %s, %+v", got, s)
	}
	if _, err := b.ctl.SetSteering(ctx, ctlapi.SteeringRequest{Code: code}); !ctlapi.Forbidden(err) {
		t.Fatalf("a used code after a restart: %v, want forbidden", err)
	}
	clock.Advance(time.Hour)
	if got := action(b); got != "direct" {
		t.Fatalf("on before the code's expiry: %s", got)
	}
	clock.Advance(time.Hour + time.Second)
	if got, s := action(b), b.Status().Steering; got != "l7" || !s.On || !s.Until.IsZero() {
		t.Fatalf("after the code's expiry: %s, %+v", got, s)
	}
	if _, err := os.Stat(filepath.Join(dir, steeringFile)); !os.IsNotExist(err) {
		t.Fatalf("the record is left once every code expired: %v", err)
	}
}
