package tenant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

const (
	authSet1 = "auth-token-set-one-5d2c9a"
	authSet2 = "auth-token-set-two-77e1b0"
	authOld  = "auth-token-expired-3f88aa"
	authRev  = "auth-token-revoked-0c4d19"
	encSet1  = "enc-token-set-one-a81f3c"
	encSet2  = "enc-token-set-two-6b20de"
	encOld   = "enc-token-expired-19ce7a"
	encRev   = "enc-token-revoked-5fa002"
	authBad  = "auth-token-wrong-000000"
	encBad   = "enc-token-wrong-0000000"
)

// allSecrets is every secret the tests use, for the log leak checks.
var allSecrets = []string{demoOrgKey, authSet1, authSet2, authOld, authRev, encSet1, encSet2,
	encOld, encRev, authBad, encBad, "PRIVATE KEY"}

// secureTenant is the demo tenant with secure enrollment; "now" is 2026-11-23.
// With encrypt, every token set has an encryption token.
func secureTenant(t *testing.T, enforce, encrypt bool) *Tenant {
	t.Helper()
	demo, err := os.ReadFile(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(tok string) string {
		if !encrypt {
			return ""
		}
		return ", encryption_token: " + tok
	}
	var b bytes.Buffer
	b.Write(demo)
	b.WriteString("secure_enrollment:\n")
	if enforce {
		b.WriteString("  enforce: true\n")
	}
	b.WriteString(`  tokens:
    - {name: set1, auth_token: ` + authSet1 + enc(encSet1) + `, created: 2026-11-01}
    - {name: set2, auth_token: ` + authSet2 + enc(encSet2) + `, created: 2026-10-01, days: 365}
`)
	tn, err := Parse("secure.yaml", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// The tenant file allows two sets; expired and revoked ones are added here
	// to cover every outcome in one matrix.
	old := EnrollToken{Name: "old", AuthToken: authOld, Created: date(2026, 1, 1), Days: 30}
	rev := EnrollToken{Name: "rev", AuthToken: authRev, Created: date(2026, 11, 1), Revoked: true}
	if encrypt {
		old.EncryptionToken, rev.EncryptionToken = encOld, encRev
	}
	tn.SecureEnrollment.Tokens = append(tn.SecureEnrollment.Tokens, old, rev)
	return tn
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestCheckEnrollAuth(t *testing.T) {
	tokens := []struct {
		name, token string
	}{{"no token", ""}, {"set 1", authSet1}, {"set 2", authSet2}, {"wrong", authBad},
		{"expired", authOld}, {"revoked", authRev}}
	type outcome struct {
		status int
		reason string
	}
	refused := map[string]outcome{"wrong": {401, tenantapi.ReasonBadAuthToken},
		"expired": {403, tenantapi.ReasonAuthTokenExpired}, "revoked": {403, tenantapi.ReasonAuthTokenRevoked}}
	for _, enforce := range []bool{true, false} {
		tn := secureTenant(t, enforce, false)
		for _, required := range []bool{true, false} {
			for _, tok := range tokens {
				name := fmt.Sprintf("enforce=%v/required=%v/%s", enforce, required, tok.name)
				t.Run(name, func(t *testing.T) {
					set, e := tn.checkEnrollAuth(tok.token, required, date(2026, 11, 23))
					w, bad := refused[tok.name]
					if tok.name == "no token" && enforce && required {
						w, bad = outcome{405, tenantapi.ReasonSecureEnrollment}, true
					}
					switch {
					case !bad && e != nil:
						t.Errorf("refused: %v", e)
					case !bad && (set == nil) != (tok.token == ""):
						t.Errorf("token set = %v", set)
					case bad && (e == nil || e.Status != w.status || e.Reason != w.reason):
						t.Errorf("got %+v, want %d %s", e, w.status, w.reason)
					}
				})
			}
		}
	}
}

// TestSecureEnrollmentMatrix enrolls through the real handler on a TLS server
// for {enforced, not} × {no token, set 1, set 2, wrong, expired, revoked} ×
// {encryption off, right key, wrong key}, and checks both the outcome and the
// sentence the agent gives; then greps every log line of both sides for secrets.
func TestSecureEnrollmentMatrix(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	now := func() time.Time { return date(2026, 11, 23) }
	tokens := []struct{ name, auth, enc string }{
		{"no token", "", encSet1}, {"set 1", authSet1, encSet1}, {"set 2", authSet2, encSet2},
		{"wrong", authBad, encSet1}, {"expired", authOld, encOld}, {"revoked", authRev, encRev}}
	authFail := map[string]struct{ reason, msg string }{
		"wrong":   {tenantapi.ReasonBadAuthToken, "tenant rejected the enrollment auth token (enrollauthtoken=)"},
		"expired": {tenantapi.ReasonAuthTokenExpired, "the enrollment auth token has expired (enrollauthtoken=)"},
		"revoked": {tenantapi.ReasonAuthTokenRevoked, "the enrollment auth token has been revoked (enrollauthtoken=)"},
	}
	for _, enforce := range []bool{true, false} {
		for _, enc := range []string{"off", "right", "wrong"} {
			l := newLabWithClock(t, secureTenant(t, enforce, enc != "off"), log, now)
			for _, tok := range tokens {
				name := fmt.Sprintf("enforce=%v/%s/encryption %s", enforce, tok.name, enc)
				t.Run(name, func(t *testing.T) {
					var extra []string
					if tok.auth != "" {
						extra = append(extra, "enrollauthtoken="+tok.auth)
					}
					switch enc {
					case "right":
						extra = append(extra, "enrollencryptiontoken="+tok.enc)
					case "wrong":
						extra = append(extra, "enrollencryptiontoken="+encBad)
					}
					id, err := enroll.EnrollUPN(context.Background(), l.params("alice@demo.test", extra...), log)
					reason, msg := "", ""
					switch f, failed := authFail[tok.name]; {
					case tok.auth == "" && enc != "off":
						reason, msg = enroll.ReasonBadParameter, "enrollencryptiontoken= needs enrollauthtoken= of the same token set"
					case tok.auth == "" && enforce:
						reason, msg = tenantapi.ReasonSecureEnrollment, "tenant enforces secure enrollment: re-run with enrollauthtoken=<auth token from the admin console> or `ztdiag -e enrollauthtoken=…`"
					case failed:
						reason, msg = f.reason, f.msg
					case enc == "wrong":
						reason, msg = enroll.ReasonBadEncryptionToken, "does not decrypt the tenant's initial config"
					}
					checkEnrollOutcome(t, id, err, reason, msg)
				})
			}
		}
	}
	// The agent and the tenant disagree about encryption: refused, not downgraded.
	t.Run("tenant encrypts, agent has no encryption token", func(t *testing.T) {
		l := newLabWithClock(t, secureTenant(t, true, true), log, now)
		id, err := enroll.EnrollUPN(context.Background(), l.params("alice@demo.test", "enrollauthtoken="+authSet1), log)
		checkEnrollOutcome(t, id, err, enroll.ReasonEncryptionRequired, "re-run with enrollencryptiontoken=")
	})
	t.Run("agent has encryption token, tenant sends clear", func(t *testing.T) {
		l := newLabWithClock(t, secureTenant(t, true, false), log, now)
		id, err := enroll.EnrollUPN(context.Background(), l.params("alice@demo.test", "enrollauthtoken="+authSet1,
			"enrollencryptiontoken="+encSet1), log)
		checkEnrollOutcome(t, id, err, enroll.ReasonEncryptionNotUsed, "sent the initial config unencrypted")
	})
	checkNoSecrets(t, logs)
}

// checkEnrollOutcome checks a success (reason "") or the refusal's reason and
// sentence; a refused enrollment returns no identity, so nothing can be saved.
func checkEnrollOutcome(t *testing.T, id *enroll.Identity, err error, reason, msg string) {
	t.Helper()
	if reason == "" {
		if err != nil || id == nil {
			t.Fatalf("enrollment failed: %v", err)
		}
		cfg := id.InitialConfig
		if cfg == nil || cfg.User != "alice@demo.test" || len(cfg.Steering.Apps) == 0 {
			t.Fatalf("initial config = %+v", cfg)
		}
		return
	}
	var e *enroll.Error
	if !errors.As(err, &e) || e.Reason != reason || !strings.Contains(e.Error(), msg) {
		t.Fatalf("got %v, want %s: %q", err, reason, msg)
	}
	if id != nil {
		t.Fatal("a refused enrollment returned an identity")
	}
	if strings.Contains(e.Error(), "\n") {
		t.Errorf("explanation is not one sentence: %q", e.Error())
	}
	for _, s := range allSecrets {
		if strings.Contains(e.Error(), s) {
			t.Errorf("error leaks %q: %s", s, e.Error())
		}
	}
}

// checkNoSecrets greps every log line, message and fields, for every secret.
func checkNoSecrets(t *testing.T, logs *observer.ObservedLogs, extra ...string) {
	t.Helper()
	for _, entry := range logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += " " + k + "=" + fmt.Sprint(v)
		}
		for _, secret := range append(extra, allSecrets...) {
			if secret != "" && strings.Contains(line, secret) {
				t.Errorf("log line leaks %q: %s", secret, line)
			}
		}
	}
	if logs.Len() == 0 {
		t.Error("nothing was logged: the leak check checked nothing")
	}
}

func newLabWithClock(t *testing.T, tn *Tenant, log *zap.Logger, now func() time.Time) *lab {
	t.Helper()
	return newLabWith(t, tn, log, now, labOptions{})
}

// labOptions change how a lab's server runs.
type labOptions struct {
	// wrap stands in front of the handler.
	wrap func(http.Handler) http.Handler
	// h2 serves HTTP/2 (httptest serves HTTP/1.1 by default).
	h2 bool
}

// newLabWith is newLabWithClock with options.
func newLabWith(t *testing.T, tn *Tenant, log *zap.Logger, now func() time.Time, o labOptions) *lab {
	t.Helper()
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, ca: ca, caFile: filepath.Join(dir, caCertFile), state: t.TempDir(), opts: o}
	l.tenant.Store(tn)
	l.startServer(log, now)
	return l
}

// checkEnrollOutcomeFor is checkEnrollOutcome for a given user ("" on refusal).
func checkEnrollOutcomeFor(t *testing.T, user string, id *enroll.Identity, err error, reason, msg string) {
	t.Helper()
	if reason == "" {
		if err != nil || id == nil || id.User != user || id.InitialConfig == nil || id.InitialConfig.User != user {
			t.Fatalf("enrollment of %s: %v %+v", user, err, id)
		}
		return
	}
	checkEnrollOutcome(t, id, err, reason, msg)
}

func asError(err error, target **enroll.Error) bool { return errors.As(err, target) }
