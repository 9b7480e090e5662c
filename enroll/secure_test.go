package enroll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const (
	authSet1 = "auth-token-set-one-5d2c9a"
	authSet2 = "auth-token-set-two-77e1b0"
	authOld  = "auth-token-expired-3f88aa"
	authRev  = "auth-token-revoked-0c4d19"
)

// secureTenant is the demo tenant with secure enrollment; "now" is 2026-11-23.
func secureTenant(t *testing.T, enforce bool) *Tenant {
	t.Helper()
	demo, err := os.ReadFile(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.Write(demo)
	b.WriteString("secure_enrollment:\n")
	if enforce {
		b.WriteString("  enforce: true\n")
	}
	b.WriteString(`  tokens:
    - {name: set1, auth_token: ` + authSet1 + `, created: 2026-11-01}
    - {name: set2, auth_token: ` + authSet2 + `, created: 2026-10-01, days: 365}
`)
	tn, err := ParseTenant("secure.yaml", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// The tenant file allows two sets; expired and revoked ones are added here
	// to cover every outcome in one matrix.
	tn.SecureEnrollment.Tokens = append(tn.SecureEnrollment.Tokens,
		EnrollToken{Name: "old", AuthToken: authOld, Created: date(2026, 1, 1), Days: 30},
		EnrollToken{Name: "rev", AuthToken: authRev, Created: date(2026, 11, 1), Revoked: true})
	return tn
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestSecureEnrollmentMatrix(t *testing.T) {
	tokens := []struct {
		name, token string
	}{{"no token", ""}, {"set 1", authSet1}, {"set 2", authSet2}, {"wrong", "auth-token-wrong-000000"},
		{"expired", authOld}, {"revoked", authRev}}
	want := map[bool]map[string]struct {
		status int
		reason string
	}{
		true: {"no token": {405, ReasonSecureEnrollment}, "set 1": {}, "set 2": {},
			"wrong": {401, ReasonBadAuthToken}, "expired": {403, ReasonAuthTokenExpired},
			"revoked": {403, ReasonAuthTokenRevoked}},
		// Not enforced: no token is fine, but a token that is given is checked.
		false: {"no token": {}, "set 1": {}, "set 2": {}, "wrong": {401, ReasonBadAuthToken},
			"expired": {403, ReasonAuthTokenExpired}, "revoked": {403, ReasonAuthTokenRevoked}},
	}
	for _, enforce := range []bool{true, false} {
		tn := secureTenant(t, enforce)
		for _, tok := range tokens {
			t.Run(map[bool]string{true: "enforced", false: "not enforced"}[enforce]+"/"+tok.name, func(t *testing.T) {
				e := tn.checkEnrollAuth(tok.token, date(2026, 11, 23))
				w := want[enforce][tok.name]
				switch {
				case w.status == 0 && e != nil:
					t.Errorf("refused: %v", e)
				case w.status != 0 && (e == nil || e.Status != w.status || e.Reason != w.reason):
					t.Errorf("got %+v, want %d %s", e, w.status, w.reason)
				}
			})
		}
	}
}

func TestSecureEnrollmentThroughAgent(t *testing.T) {
	tn := secureTenant(t, true)
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	l := newLabWithClock(t, tn, log, func() time.Time { return date(2026, 11, 23) })
	tests := []struct {
		name, extra, reason, msg string
	}{
		{"missing", "", ReasonSecureEnrollment, "tenant enforces secure enrollment: re-run with enrollauthtoken="},
		{"wrong", "enrollauthtoken=auth-token-wrong-000000", ReasonBadAuthToken, "tenant rejected the enrollment auth token (enrollauthtoken=)"},
		{"expired", "enrollauthtoken=" + authOld, ReasonAuthTokenExpired, "has expired (enrollauthtoken=)"},
		{"ok", "enrollauthtoken=" + authSet2, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.extra != "" {
				extra = append(extra, tc.extra)
			}
			id, err := EnrollUPN(context.Background(), l.params("alice@demo.test", extra...), log)
			if tc.reason == "" {
				if err != nil || id == nil {
					t.Fatalf("enrollment failed: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.reason || !strings.Contains(e.Error(), tc.msg) {
				t.Fatalf("got %v, want %s: %q", err, tc.reason, tc.msg)
			}
		})
	}
	// Neither side logged a secret, at any level.
	for _, entry := range logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += " " + k + "=" + toString(v)
		}
		for _, secret := range []string{demoOrgKey, authSet1, authSet2, authOld, "auth-token-wrong", "PRIVATE KEY"} {
			if strings.Contains(line, secret) {
				t.Errorf("log line leaks %q: %s", secret, line)
			}
		}
	}
	if logs.Len() == 0 {
		t.Error("nothing was logged: the leak check checked nothing")
	}
}

func toString(v any) string { return fmt.Sprint(v) }

func newLabWithClock(t *testing.T, tn *Tenant, log *zap.Logger, now func() time.Time) *lab {
	t.Helper()
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, ca: ca, caFile: filepath.Join(dir, caCertFile)}
	l.tenant.Store(tn)
	l.startServer(log, now)
	return l
}
