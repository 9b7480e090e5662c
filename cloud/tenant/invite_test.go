package tenant

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

const (
	bobUserKey = "bob-invitation-key-71c0e2d4"
	adminTok   = "admin-token-9e1f0a7c33b2"
)

// inviteTenant is the demo tenant with an invitation key for bob in the file
// and the admin API enabled.
func inviteTenant(t *testing.T) *Tenant {
	t.Helper()
	demo, err := os.ReadFile(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Replace(string(demo), "  - upn: bob@demo.test\n",
		"  - upn: bob@demo.test\n    user_key: "+bobUserKey+"\n", 1)
	data += "admin_token: " + adminTok + "\n"
	tn, err := Parse("invite.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// adminPost posts body to the admin API's path with the bearer token (none
// when empty); the caller closes the answer's body.
func (l *lab) adminPost(path, bearer, body string) *http.Response {
	l.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, l.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := l.srv.Client().Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	return resp
}

// issueInvite calls the admin API and returns the status and the answer.
func (l *lab) issueInvite(bearer, body string) (int, tenantapi.InviteResponse) {
	l.t.Helper()
	resp := l.adminPost("/v1/admin/invitations", bearer, body)
	defer resp.Body.Close()
	var out tenantapi.InviteResponse
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (l *lab) inviteParams(key string) enroll.Params {
	l.t.Helper()
	p, err := enroll.ParseParams([]string{"host=" + l.srv.URL, "userkey=" + key, "cacert=" + l.caFile})
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func TestInvitation(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	var clock atomic.Pointer[time.Time]
	start := date(2026, 11, 23)
	clock.Store(&start)
	now := func() time.Time { return *clock.Load() }
	l := newLabWithClock(t, inviteTenant(t), log, now)
	ctx := context.Background()

	id, err := enroll.EnrollInvite(ctx, l.inviteParams(bobUserKey), log)
	checkEnrollOutcomeFor(t, "bob@demo.test", id, err, "", "")
	_, err = enroll.EnrollInvite(ctx, l.inviteParams(bobUserKey), log)
	checkEnrollOutcomeFor(t, "", nil, err, tenantapi.ReasonInvitationUsed, "has already enrolled a device (this invitation's user key was already used to enroll a device on 2026-11-23): a key works once")

	// A restart of the tenant API must not make the key usable again.
	l.srv.Close()
	l.startServer(log, now)
	_, err = enroll.EnrollInvite(ctx, l.inviteParams(bobUserKey), log)
	checkEnrollOutcomeFor(t, "", nil, err, tenantapi.ReasonInvitationUsed, "a key works once")

	_, err = enroll.EnrollInvite(ctx, l.inviteParams("not-an-invitation-key-000"), log)
	checkEnrollOutcomeFor(t, "", nil, err, tenantapi.ReasonBadUserKey, "does not know this invitation's user key (userkey=)")

	// The admin API issues keys for alice.
	if st, _ := l.issueInvite("", `{"upn":"alice@demo.test"}`); st != http.StatusUnauthorized {
		t.Errorf("no bearer: HTTP %d", st)
	}
	if st, _ := l.issueInvite("admin-token-wrong-000000", `{"upn":"alice@demo.test"}`); st != http.StatusUnauthorized {
		t.Errorf("wrong bearer: HTTP %d", st)
	}
	if st, _ := l.issueInvite(adminTok, `{"upn":"nobody@demo.test"}`); st != http.StatusNotFound {
		t.Errorf("unknown user: HTTP %d", st)
	}
	if st, _ := l.issueInvite(adminTok, `{"upn":"alice@demo.test","days":91}`); st != http.StatusBadRequest {
		t.Errorf("days=91: HTTP %d", st)
	}
	st, inv := l.issueInvite(adminTok, `{"upn":"alice@demo.test","days":7}`)
	if st != http.StatusCreated || inv.UPN != "alice@demo.test" || len(inv.UserKey) < minSecretLen ||
		!inv.Expires.Equal(start.AddDate(0, 0, 7)) {
		t.Fatalf("issue: HTTP %d %+v", st, inv)
	}
	_, late := l.issueInvite(adminTok, `{"upn":"alice@demo.test","days":1}`)

	// Issued keys survive a restart; the state file holds no key.
	l.srv.Close()
	l.startServer(log, now)
	state, err := os.ReadFile(filepath.Join(l.state, invitationsFile))
	if err != nil || bytes.Contains(state, []byte(inv.UserKey)) || bytes.Contains(state, []byte(bobUserKey)) {
		t.Fatalf("state file: %v, leaks a key: %s", err, state)
	}
	id, err = enroll.EnrollInvite(ctx, l.inviteParams(inv.UserKey), log)
	checkEnrollOutcomeFor(t, "alice@demo.test", id, err, "", "")
	_, err = enroll.EnrollInvite(ctx, l.inviteParams(inv.UserKey), log)
	checkEnrollOutcomeFor(t, "", nil, err, tenantapi.ReasonInvitationUsed, "a key works once")

	later := start.AddDate(0, 0, 2)
	clock.Store(&later)
	_, err = enroll.EnrollInvite(ctx, l.inviteParams(late.UserKey), log)
	checkEnrollOutcomeFor(t, "", nil, err, tenantapi.ReasonInvitationExpired, "this invitation has expired (invitation expired on 2026-11-24)")

	checkNoSecrets(t, logs, bobUserKey, inv.UserKey, late.UserKey, adminTok, "admin-token-wrong")
}

func TestInvitationStateCorrupt(t *testing.T) {
	l := newLab(t, inviteTenant(t), zap.NewNop())
	if err := os.WriteFile(filepath.Join(l.state, invitationsFile), []byte(`{"version":1,"used":[{"key_sha256":"zz"`), 0o600); err != nil {
		t.Fatal(err)
	}
	l.srv.Close()
	l.startServer(zap.NewNop(), nil)
	_, err := enroll.EnrollInvite(context.Background(), l.inviteParams(bobUserKey), zap.NewNop())
	var e *enroll.Error
	if !asError(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("corrupt state: %v", err)
	}
	// UPN enrollment is unaffected.
	l.enroll("alice@demo.test")
}

func TestInvitationTenantFile(t *testing.T) {
	base, _ := os.ReadFile(demoTenant)
	for name, tc := range map[string]struct{ edit, want string }{
		"short key":      {"    user_key: short\n", "users[1].user_key: too short"},
		"garbage hash":   {"    password_hash: x\n", "users[1].password_hash: not a bcrypt hash"},
		"short admin":    {"", "admin_token: too short"},
		"bad hash":       {"    password_hash: $2a$10$short\n", "users[1].password_hash: not a bcrypt hash"},
		"shared invites": {"", ""},
	} {
		t.Run(name, func(t *testing.T) {
			data := strings.Replace(string(base), "  - upn: bob@demo.test\n", "  - upn: bob@demo.test\n"+tc.edit, 1)
			switch name {
			case "short admin":
				data += "admin_token: short\n"
			case "shared invites":
				data = strings.Replace(data, "  - upn: bob@demo.test\n", "  - upn: bob@demo.test\n    user_key: "+bobUserKey+"\n", 1)
				data = strings.Replace(data, "    groups: [engineering]\n", "    groups: [engineering]\n    user_key: "+bobUserKey+"\n", 1)
				tc.want = "same key as user alice@demo.test"
			}
			_, err := Parse("t.yaml", []byte(data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), bobUserKey) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}
