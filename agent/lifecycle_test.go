package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll"
)

func TestStartCloseStartAgain(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	if err := a.Start(context.Background()); err != ErrNotStopped {
		t.Fatalf("second Start: %v, want ErrNotStopped", err)
	}
	st := a.Status()
	if st.State != ctlapi.StateRunning || st.Enrollment.User != "alice@test.example" || st.Config.Source != "tenant" {
		t.Fatalf("status: %+v", st)
	}
	if n := a.enr.Count("enroll"); n != 1 {
		t.Fatalf("%d enrollments, want 1", n)
	}
	if _, ok := a.dns.Current(); !ok {
		t.Fatal("OS DNS not pointed at the agent")
	}
	for range 2 {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.Status(); st.State != ctlapi.StateStopped {
		t.Fatalf("state after Close: %s", st.State)
	}
	if _, ok := a.dns.Current(); ok {
		t.Fatal("OS DNS not restored at Close")
	}
	if _, err := os.Stat(a.cfg.SocketPath); err == nil {
		t.Fatal("control socket left behind")
	}
	// The same agent starts again, as the device it enrolled as.
	dev := st.Enrollment.DeviceID
	a.start(t)
	if st := a.Status(); st.State != ctlapi.StateRunning || st.Enrollment.DeviceID != dev {
		t.Fatalf("after a second start: %s as %s, want running as %s", st.State, st.Enrollment.DeviceID, dev)
	}
	if n := a.enr.Count("enroll"); n != 1 {
		t.Fatalf("%d enrollments after a second start, want 1", n)
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	// Wrong org key: enrollment fails before anything is configured.
	a.settings.install.Token = "wrong-key-0123456789"
	if err := a.Start(context.Background()); err == nil {
		t.Fatal("Start with a wrong org key succeeded")
	}
	if st := a.Status(); st.State != ctlapi.StateStopped {
		t.Fatalf("state after a failed start: %s", st.State)
	}
	if calls := a.dns.Calls(); len(calls) != 0 {
		t.Fatalf("DNS touched by a failed start: %v", calls)
	}
	if _, err := os.Stat(a.cfg.SocketPath); err == nil {
		t.Fatal("control socket left behind")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close after a failed start: %v", err)
	}
}

func TestStartWithTenantDownUsesCache(t *testing.T) {
	dir := shortTempDir(t)
	a := newFakeAgent(t, dir, nil)
	a.start(t)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.cfgs.Fail(errors.New("tenant unreachable"))
	a.start(t)
	if src := a.Status().Config.Source; src != "cache" {
		t.Fatalf("config source = %q, want cache", src)
	}
	a.Close()

	// A cache written for another device (a replaced enrollment) is no good.
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		t.Fatal(err)
	}
	var c cachedConfig
	if err := json.Unmarshal(b, &c); err != nil || c.DeviceID == "" {
		t.Fatalf("cached config: %v, device %q", err, c.DeviceID)
	}
	c.DeviceID = "someone-else"
	if b, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, configFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err == nil {
		a.Close()
		t.Fatal("started on another device's cached config")
	}
}

func TestMDMOverridesInstallParameters(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	// MDM names the user; the install parameters name someone else.
	a.settings.install.UPN = "nobody@test.example"
	a.mdm.Push(map[string]string{"upn": "alice@test.example"})
	a.start(t)
	st := a.Status()
	if st.Enrollment.User != "alice@test.example" {
		t.Fatalf("enrolled as %q, want the MDM's alice@test.example", st.Enrollment.User)
	}
	sources := map[string]string{}
	for _, s := range st.Settings {
		sources[s.Key] = s.Source
		if s.Key == "token" && s.Value == fakeOrgKey {
			t.Fatal("status shows the org key")
		}
		if s.Pending != "" {
			t.Fatalf("setting %s pending right after enrolling with it", s.Key)
		}
	}
	if sources["upn"] != "mdm:/etc/ztagent/mdm.json" || sources["host"] != "install" {
		t.Fatalf("setting sources: %v", sources)
	}

	// An invalid MDM file keeps the last good settings.
	a.mdm.Break(errors.New("mdm.json: line 3: invalid character"))
	if a.refreshSettings() {
		t.Fatal("a broken MDM source changed the settings")
	}
	if a.params().UPN != "alice@test.example" {
		t.Fatalf("UPN after a broken MDM source: %q", a.params().UPN)
	}
}

func TestReenroll(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	ctx := context.Background()
	old := a.Status().Enrollment.DeviceID

	// An incomplete request changes nothing: it is not "enroll again".
	for _, body := range []string{`null`, `{}`, `{"args":null}`, `{"args":[],"force":true}`} {
		var es ctlapi.EnrollmentStatus
		if err := a.ctl.Do(ctx, http.MethodPost, ctlapi.PathEnroll, json.RawMessage(body), &es); err == nil ||
			!strings.Contains(err.Error(), "enroll request") {
			t.Fatalf("POST %s %s: %v, %+v", ctlapi.PathEnroll, body, err, es)
		}
	}
	if st := a.Status(); st.Enrollment.DeviceID != old {
		t.Fatalf("an incomplete request re-enrolled: device %s (was %s)", st.Enrollment.DeviceID, old)
	}

	// A rejected parameter changes nothing.
	if _, err := a.ctl.Reenroll(ctx, []string{"token=not-the-org-key-012345"}); err == nil {
		t.Fatal("re-enrollment with a wrong org key succeeded")
	}
	if st := a.Status(); st.State != ctlapi.StateRunning || st.Enrollment.DeviceID != old {
		t.Fatalf("after a failed re-enrollment: %s, device %s (was %s)", st.State, st.Enrollment.DeviceID, old)
	}

	es, err := a.ctl.Reenroll(ctx, []string{"token=" + fakeOrgKey, "upn=bob@test.example"})
	if err != nil {
		t.Fatal(err)
	}
	if es.DeviceID == old || es.User != "bob@test.example" {
		t.Fatalf("re-enrollment answered %+v", es)
	}
	// Saved before the answer: identity and install parameters.
	saved, err := enroll.LoadIdentity(a.cfg.StateDir)
	if err != nil || saved.DeviceID != es.DeviceID {
		t.Fatalf("saved identity: %v, %v", saved, err)
	}
	if p, err := enroll.LoadParams(a.cfg.StateDir); err != nil || p.UPN != "bob@test.example" {
		t.Fatalf("saved install parameters: %v, %v", p, err)
	}
	waitStatus(t, a.Agent, "running as the new device", func(st ctlapi.Status) bool {
		return running(st) && st.Enrollment.DeviceID == es.DeviceID
	})
}
