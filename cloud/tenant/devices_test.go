package tenant

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// cutter lets the handler commit the first n device enrollments and then
// cuts their answers: halfway through the body, or before the headers. Every
// enrollment request is counted in seen, and its HTTP major version kept in
// proto.
type cutter struct {
	n     int32
	where string
	seen  atomic.Int32
	proto atomic.Int32
}

func (c *cutter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/enroll/") && r.URL.Path != "/v1/idp/token" {
			next.ServeHTTP(w, r)
			return
		}
		c.proto.Store(int32(r.ProtoMajor))
		if c.seen.Add(1) > c.n {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if c.where == "body" {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
			http.NewResponseController(w).Flush()
		}
		panic(http.ErrAbortHandler)
	})
}

// TestLostAnswerFindsTheSameDevice cuts the first enrollment answer after the
// tenant recorded the device, over HTTP/1.1 and HTTP/2, in the body and before
// the headers, for UPN, invitation and IdP enrollment. The agent retries with
// the same key and gets the same device: one record, confirmed by the device's
// first config fetch; the invitation and the sign-in code serve that retry and
// no other key.
func TestLostAnswerFindsTheSameDevice(t *testing.T) {
	for _, proto := range []string{"http1", "h2"} {
		for _, where := range []string{"body", "headers"} {
			for _, method := range []string{"upn", "invite", "idp"} {
				t.Run(proto+"/"+where+"/"+method, func(t *testing.T) {
					cut := &cutter{n: 1, where: where}
					tn := inviteTenant(t)
					if method == "idp" {
						tn = idpTenant(t, "")
					}
					l := newLabWith(t, tn, zaptest.NewLogger(t), nil, labOptions{wrap: cut.wrap, h2: proto == "h2"})
					b := &formBrowser{t: t, client: l.srv.Client(), upn: "alice@demo.test", pw: alicePassword}
					p := map[string]enroll.Params{"upn": l.params("alice@demo.test"), "invite": l.inviteParams(bobUserKey),
						"idp": l.idpParams()}[method]
					id, err := enroll.Enroll(context.Background(), p, b.open, zap.NewNop())
					if err != nil {
						t.Fatal(err)
					}
					if n := cut.seen.Load(); n != 2 {
						t.Fatalf("%d enrollment requests, want the cut one and its retry", n)
					}
					if want := map[string]int32{"http1": 1, "h2": 2}[proto]; cut.proto.Load() != want {
						t.Fatalf("served HTTP/%d, want HTTP/%d", cut.proto.Load(), want)
					}
					recs := l.h.devices.list()
					if len(recs) != 1 || recs[0].ID != id.DeviceID || recs[0].Method != method || !recs[0].Confirmed.IsZero() {
						t.Fatalf("device records %+v for device %s", recs, id.DeviceID)
					}
					if method == "invite" {
						if used := l.h.invites.st.Used; len(used) != 1 || used[0].Device != id.DeviceID {
							t.Fatalf("invitation use %+v", used)
						}
						_, err := enroll.EnrollInvite(context.Background(), p, zap.NewNop())
						var e *enroll.Error
						if !errors.As(err, &e) || e.Reason != tenantapi.ReasonInvitationUsed {
							t.Fatalf("another device key with the same invitation: %v", err)
						}
					}
					cc := newCC(t, id)
					defer cc.Close()
					if _, _, err := cc.Fetch(context.Background(), ""); err != nil {
						t.Fatal(err)
					}
					if rec := findDevice(t, l, id.DeviceID); rec.Confirmed.IsZero() || len(l.h.devices.list()) != 1 {
						t.Fatalf("after the fetch: %+v", l.h.devices.list())
					}
				})
			}
		}
	}
}

// TestAnswerLostForGood: when every attempt loses its answer, the agent says so
// and the tenant holds one pending record — the device key's — not one per
// attempt.
func TestAnswerLostForGood(t *testing.T) {
	cut := &cutter{n: 100, where: "body"}
	l := newLabWith(t, loadDemo(t), zap.NewNop(), nil, labOptions{wrap: cut.wrap})
	_, err := enroll.EnrollUPN(context.Background(), l.params("alice@demo.test"), zap.NewNop())
	var e *enroll.Error
	if !errors.As(err, &e) || e.Reason != enroll.ReasonAnswerLost {
		t.Fatalf("got %v", err)
	}
	recs := l.h.devices.list()
	if cut.seen.Load() != 3 || len(recs) != 1 || !recs[0].Confirmed.IsZero() {
		t.Fatalf("%d attempts left records %+v", cut.seen.Load(), recs)
	}
}

func TestInvitationRedeemedAgainOnlyBySameDevice(t *testing.T) {
	tn := inviteTenant(t)
	dir := t.TempDir()
	now := date(2026, 11, 23)
	s := openInviteStore(dir)
	u, e := s.redeem(tn, bobUserKey, "dev1", now)
	if e != nil || u.UPN != "bob@demo.test" {
		t.Fatalf("first use: %v %v", u, e)
	}
	for name, store := range map[string]*inviteStore{"same process": s, "after a restart": openInviteStore(dir)} {
		t.Run(name, func(t *testing.T) {
			if u, e := store.redeem(tn, bobUserKey, "dev1", now.Add(time.Hour)); e != nil || u.UPN != "bob@demo.test" {
				t.Errorf("same device key again: %v %v", u, e)
			}
			if _, e := store.redeem(tn, bobUserKey, "dev2", now.Add(time.Hour)); e == nil || e.Reason != tenantapi.ReasonInvitationUsed {
				t.Errorf("another device key: %v", e)
			}
			if n := len(store.st.Used); n != 1 {
				t.Errorf("%d uses recorded", n)
			}
		})
	}
	// A user removed since: the same device gets no certificate either.
	gone := inviteTenant(t)
	delete(gone.users, "bob@demo.test")
	if _, e := s.redeem(gone, bobUserKey, "dev1", now); e == nil || e.Reason != tenantapi.ReasonUnknownUser {
		t.Errorf("removed user: %v", e)
	}
}

func TestIdPCodeClaim(t *testing.T) {
	now := date(2026, 11, 23)
	var c idpCodes
	c.add("code1", idpCode{upn: "alice@demo.test", expires: now.Add(idpCodeTTL)}, now)
	c.add("code2", idpCode{upn: "alice@demo.test", expires: now.Add(idpCodeTTL)}, now)
	yes := func(idpCode) bool { return true }
	no := func(idpCode) bool { return false }
	steps := []struct {
		name, code, device string
		ok                 func(idpCode) bool
		at                 time.Duration
		want               bool
	}{
		{"first exchange binds", "code1", "dev1", yes, 0, true},
		{"same device again", "code1", "dev1", yes, time.Second, true},
		{"same device, wrong verifier", "code1", "dev1", no, time.Second, false},
		{"still bound after a wrong attempt", "code1", "dev1", yes, 2 * time.Second, true},
		{"another device", "code1", "dev2", yes, time.Second, false},
		{"expired", "code1", "dev1", yes, idpCodeTTL, false},
		{"wrong first attempt consumes", "code2", "dev1", no, 0, false},
		{"then the right one fails", "code2", "dev1", yes, 0, false},
		{"unknown", "code3", "dev1", yes, 0, false},
	}
	for _, s := range steps {
		if _, got := c.claim(s.code, s.device, now.Add(s.at), s.ok); got != s.want {
			t.Errorf("%s: claim = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestDeviceStore(t *testing.T) {
	dir := t.TempDir()
	t0 := date(2026, 11, 23)
	s := openDeviceStore(dir, t0)
	rec := func(id, upn string, at time.Time) deviceRecord {
		return deviceRecord{ID: id, UPN: upn, Name: "pc", Method: "upn", Issued: at}
	}
	if e := s.record(rec("dev1", "alice@demo.test", t0)); e != nil {
		t.Fatal(e)
	}
	if e := s.record(rec("dev1", "alice@demo.test", t0.Add(time.Minute))); e != nil {
		t.Fatalf("same key, same user: %v", e)
	}
	if e := s.record(rec("dev1", "bob@demo.test", t0)); e == nil || e.Status != http.StatusConflict || e.Reason != tenantapi.ReasonDeviceKeyInUse {
		t.Fatalf("same key, another user: %v", e)
	}
	if e := s.record(rec("dev2", "bob@demo.test", t0)); e != nil {
		t.Fatal(e)
	}
	if err := s.confirm(tenantapi.Peer{Device: "dev1", User: "alice@demo.test"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A device met first with its certificate (enrolled before records were kept).
	if err := s.confirm(tenantapi.Peer{Device: "dev3", User: "carol@demo.test"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	back := openDeviceStore(dir, t0.Add(2*time.Hour))
	if back.loadErr != nil {
		t.Fatal(back.loadErr)
	}
	got := back.list()
	if len(got) != 3 || got[0].ID != "dev1" || !got[0].Enrolled.Equal(t0) || !got[0].Issued.Equal(t0.Add(time.Minute)) ||
		got[0].Confirmed.IsZero() || !got[1].Confirmed.IsZero() || got[2].Method != "seen" {
		t.Fatalf("reloaded %+v", got)
	}

	// dev2 never confirmed: past pendingDeviceTTL it is dropped.
	later := openDeviceStore(dir, t0.Add(pendingDeviceTTL+time.Hour))
	if got := later.list(); len(got) != 2 || got[0].ID != "dev1" || got[1].ID != "dev3" {
		t.Fatalf("long after a pending enrollment: %+v", got)
	}

	// A crash in the middle of an append leaves a torn last line: ignored,
	// and cut off before the next append.
	path := filepath.Join(dir, devicesFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"device_id":"dev9","up`)
	f.Close()
	torn := openDeviceStore(dir, t0.Add(pendingDeviceTTL+time.Hour))
	if torn.loadErr != nil || len(torn.list()) != 2 {
		t.Fatalf("torn tail: %v %+v", torn.loadErr, torn.list())
	}
	if e := torn.record(rec("dev4", "alice@demo.test", t0.Add(pendingDeviceTTL))); e != nil {
		t.Fatal(e)
	}
	if again := openDeviceStore(dir, t0.Add(pendingDeviceTTL+time.Hour)); again.loadErr != nil || len(again.list()) != 3 {
		t.Fatalf("after a torn tail and an append: %v %+v", again.loadErr, again.list())
	}

	// Anything else unreadable refuses enrollment rather than guess.
	os.WriteFile(path, []byte("not json\n{}\n"), 0o600)
	bad := openDeviceStore(dir, t0)
	if bad.loadErr == nil {
		t.Fatal("corrupt device records loaded")
	}
	if e := bad.record(rec("dev5", "alice@demo.test", t0)); e == nil || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("enrollment with unreadable records: %v", e)
	}
}

// TestDeviceStoreSweeps: a running tenant drops records pending for more than
// pendingDeviceTTL, without a restart; a device met later with its certificate is
// recorded again.
func TestDeviceStoreSweeps(t *testing.T) {
	dir := t.TempDir()
	t0 := date(2026, 11, 23)
	s := openDeviceStore(dir, t0)
	for _, r := range []deviceRecord{
		{ID: "gave-up", UPN: "alice@demo.test", Method: "upn", Issued: t0},
		{ID: "late", UPN: "alice@demo.test", Method: "upn", Issued: t0.Add(time.Minute)},
	} {
		if e := s.record(r); e != nil {
			t.Fatal(e)
		}
	}
	if e := s.record(deviceRecord{ID: "next-day", UPN: "bob@demo.test", Method: "upn", Issued: t0.Add(pendingDeviceTTL + 2*time.Hour)}); e != nil {
		t.Fatal(e)
	}
	if got := s.list(); len(got) != 1 || got[0].ID != "next-day" {
		t.Fatalf("after the sweep: %+v", got)
	}
	if back := openDeviceStore(dir, t0.Add(pendingDeviceTTL+2*time.Hour)); len(back.list()) != 1 || countLines(t, filepath.Join(dir, devicesFile)) != 1 {
		t.Fatalf("the sweep was not written: %+v", back.list())
	}
	if err := s.confirm(tenantapi.Peer{Device: "late", User: "alice@demo.test"}, t0.Add(pendingDeviceTTL+3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := s.list(); len(got) != 2 || findRecord(got, "late").Confirmed.IsZero() {
		t.Fatalf("a swept device met with its certificate: %+v", got)
	}
}

func findRecord(rs []deviceRecord, id string) deviceRecord {
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	return deviceRecord{}
}

// TestDeviceStoreCompacts: re-answers and confirmations append lines; opening
// the store rewrites it with one line per device when old lines dominate.
func TestDeviceStoreCompacts(t *testing.T) {
	dir := t.TempDir()
	t0 := date(2026, 11, 23)
	s := openDeviceStore(dir, t0)
	for i := range 1100 {
		if e := s.record(deviceRecord{ID: "dev1", UPN: "alice@demo.test", Method: "upn", Issued: t0.Add(time.Duration(i) * time.Second)}); e != nil {
			t.Fatal(e)
		}
	}
	path := filepath.Join(dir, devicesFile)
	if lines := countLines(t, path); lines != 1100 {
		t.Fatalf("%d lines before compaction", lines)
	}
	back := openDeviceStore(dir, t0)
	if lines := countLines(t, path); back.loadErr != nil || lines != 1 || len(back.list()) != 1 {
		t.Fatalf("after compaction: %v, %d lines", back.loadErr, lines)
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}
