package agent

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/agenttest"
	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/platform"
)

// TestConcurrentRequests throws re-enrollments, login switches, suspensions
// and restarts at the supervisor at once. It must take them one at a time
// and end up running as the last enrollment it saved.
func TestConcurrentRequests(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.settings.install.PreLogonUser = "prelogon@test.example" // logins switch identity
	a.start(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var saved atomic.Int32
	for i := range 4 {
		wg.Go(func() {
			if _, err := a.ctl.Reenroll(ctx, nil); err == nil {
				saved.Add(1)
			} else {
				t.Errorf("re-enrollment %d: %v", i, err)
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			a.sess.Login(platform.Session{ID: "2", User: "alice", Active: true, Class: "user"})
			time.Sleep(5 * time.Millisecond)
			a.sess.Logout("2")
		}
	})
	wg.Go(func() {
		for range 5 {
			ask(a.Agent, request{kind: reqRestart, why: "test"})
			ask(a.Agent, request{kind: reqSuspend, gen: 1, why: "test (stale)"})
		}
	})
	wg.Wait()
	if saved.Load() != 4 {
		t.Fatalf("%d of 4 re-enrollments saved", saved.Load())
	}
	waitStatus(t, a.Agent, "running as the pre-logon identity on disk", func(st ctlapi.Status) bool {
		p, _ := a.current()
		if !running(st) || p == nil || p.who.kind != PrincipalPreLogon {
			return false
		}
		onDisk, err := enroll.LoadIdentity(p.who.dir)
		return err == nil && st.Enrollment.DeviceID == onDisk.DeviceID
	})
}

// TestCloseDuringRestart closes the agent while a restart waits for the
// tenant: Close must abort it and return with nothing left behind.
func TestCloseDuringRestart(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	fetching := make(chan struct{})
	var once sync.Once
	a.cfgs.SetHook(func(ctx context.Context) error {
		once.Do(func() { close(fetching) })
		<-ctx.Done() // a tenant that never answers
		return ctx.Err()
	})
	if _, err := a.ctl.Reenroll(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fetching:
	case <-time.After(10 * time.Second):
		t.Fatal("the restart never fetched its config")
	}
	if st := a.State(); st != ctlapi.StateStarting {
		t.Fatalf("state during the restart: %s", st)
	}
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %s", d)
	}
	if st := a.Status(); st.State != ctlapi.StateStopped {
		t.Fatalf("state after Close: %s", st.State)
	}
	if _, ok := a.dns.Current(); ok {
		t.Fatal("OS DNS left pointed at the agent")
	}
	if _, err := os.Stat(a.cfg.SocketPath); err == nil {
		t.Fatal("control socket left behind")
	}
}

// TestReenrollDuringClose: an enrollment that completes at the tenant as
// Close begins is saved and reported saved; the next start runs as it.
func TestReenrollDuringClose(t *testing.T) {
	dir := shortTempDir(t)
	a := newFakeAgent(t, dir, nil)
	a.start(t)
	entered := make(chan struct{})
	a.enr.SetHook(func(ctx context.Context, c agenttest.Call) error {
		close(entered)
		<-ctx.Done() // Close has begun...
		return nil   // ...and the tenant enrolled the device all the same
	})
	type result struct {
		es  ctlapi.EnrollmentStatus
		err error
	}
	res := make(chan result, 1)
	go func() {
		es, err := a.ctl.Reenroll(context.Background(), []string{"upn=bob@test.example"})
		res <- result{es, err}
	}()
	<-entered
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("re-enrollment during Close: %v", r.err)
	}
	saved, err := enroll.LoadIdentity(dir)
	if err != nil || saved.DeviceID != r.es.DeviceID || saved.User != "bob@test.example" {
		t.Fatalf("reported saved as %s, but on disk: %v, %v", r.es.DeviceID, saved, err)
	}
	a.enr.SetHook(nil)
	b := newFakeAgent(t, dir, nil)
	b.enr = a.enr
	b.cfg.Enroller = a.enr
	b.cfg.Params, _ = enroll.LoadParams(dir)
	b.settings.install = b.cfg.Params
	b.start(t)
	if st := b.Status(); st.Enrollment.DeviceID != r.es.DeviceID || st.Enrollment.User != "bob@test.example" {
		t.Fatalf("next start runs as %s %s, want %s", st.Enrollment.User, st.Enrollment.DeviceID, r.es.DeviceID)
	}
}

// TestCloseWaitsForControlHandlers: a control-API call in progress (an
// enrollment slow to give up) holds Close until it has answered.
func TestCloseWaitsForControlHandlers(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	entered := make(chan struct{})
	var returned atomic.Bool
	a.enr.SetHook(func(ctx context.Context, c agenttest.Call) error {
		close(entered)
		<-ctx.Done()
		time.Sleep(300 * time.Millisecond) // slow to notice
		returned.Store(true)
		return errors.New("enrollment abandoned")
	})
	answered := make(chan error, 1)
	go func() {
		_, err := a.ctl.Reenroll(context.Background(), nil)
		answered <- err
	}()
	<-entered
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Close returned while a control-API handler was still running")
	}
	select {
	case err := <-answered:
		if err == nil {
			t.Fatal("an abandoned enrollment was reported saved")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller never got an answer")
	}
}

// TestRestartFailureIsRetried: a restart that fails leaves the agent
// stopped with the reason in its status, and the supervisor retries.
func TestRestartFailureIsRetried(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	a.cfgs.Fail(errors.New("tenant unreachable"))
	if _, err := a.ctl.Reenroll(context.Background(), nil); err != nil { // its cached config goes
		t.Fatal(err)
	}
	st := waitStatus(t, a.Agent, "stopped after a failed restart", func(st ctlapi.Status) bool {
		return st.State == ctlapi.StateStopped && st.Error != ""
	})
	t.Logf("status: %s", st.Error)
	a.cfgs.Fail(nil)
	ask(a.Agent, request{kind: reqRestart, why: "test"}) // sooner than the backoff
	waitStatus(t, a.Agent, "running again", running)
}
