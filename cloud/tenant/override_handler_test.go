package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// overrideTenant is inviteTenant with an override key: the private key in
// the tenant file, its public key in the "everyone" profile (bob's), not in
// "engineering" (alice's).
func overrideTenant(t *testing.T) (*Tenant, string) {
	t.Helper()
	pub, priv := steering.NewTamperOverrideKey()
	demo, err := os.ReadFile(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Replace(string(demo), "  - upn: bob@demo.test\n",
		"  - upn: bob@demo.test\n    user_key: "+bobUserKey+"\n", 1)
	data = strings.Replace(data, "  - name: everyone\n    users: [\"*\"]\n",
		"  - name: everyone\n    users: [\"*\"]\n    client:\n      tamper_override_key: "+pub+"\n", 1)
	data += "admin_token: " + adminTok + "\ntamper_override_private_key: " + priv + "\n"
	tn, err := Parse("override.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return tn, pub
}

// issueOverride calls POST /v1/admin/override-codes.
func (l *lab) issueOverride(bearer, body string) (int, tenantapi.OverrideCodeResponse, string) {
	l.t.Helper()
	resp := l.adminPost("/v1/admin/override-codes", bearer, body)
	defer resp.Body.Close()
	var out tenantapi.OverrideCodeResponse
	var e tenantapi.Error
	dec := json.NewDecoder(resp.Body)
	if resp.StatusCode == http.StatusCreated {
		dec.Decode(&out)
	} else {
		dec.Decode(&e)
	}
	return resp.StatusCode, out, e.Reason
}

// TestAdminOverrideCode: the admin API issues a code for an enrolled device
// that the agent's verifier (steering.CheckTamperOverride, as agent/tamper.go
// calls it with the profile's key) accepts for that device until the expiry
// asked, and refuses for another device or after it; a device whose profile
// has no key, an unknown device, a bad duration and a missing bearer are
// refused; the code is never logged.
func TestAdminOverrideCode(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	var clock atomic.Pointer[time.Time]
	start := date(2026, 11, 23)
	clock.Store(&start)
	tn, pub := overrideTenant(t)
	l := newLabWithClock(t, tn, log, func() time.Time { return *clock.Load() })
	bob, err := enroll.EnrollInvite(context.Background(), l.inviteParams(bobUserKey), log)
	if err != nil {
		t.Fatal(err)
	}
	alice := l.enroll("alice@demo.test").DeviceID

	for name, c := range map[string]struct {
		bearer, body string
		status       int
		reason       string
	}{
		"no bearer":       {"", `{"device_id":"` + bob.DeviceID + `","valid_for":"4h"}`, http.StatusUnauthorized, tenantapi.ReasonBadAdminToken},
		"unknown device":  {adminTok, `{"device_id":"dev-nope","valid_for":"4h"}`, http.StatusNotFound, tenantapi.ReasonUnknownDevice},
		"too long":        {adminTok, `{"device_id":"` + bob.DeviceID + `","valid_for":"169h"}`, http.StatusBadRequest, tenantapi.ReasonBadRequest},
		"no duration":     {adminTok, `{"device_id":"` + bob.DeviceID + `"}`, http.StatusBadRequest, tenantapi.ReasonBadRequest},
		"profile, no key": {adminTok, `{"device_id":"` + alice + `","valid_for":"4h"}`, http.StatusConflict, tenantapi.ReasonNoOverrideKey},
		"unknown field":   {adminTok, `{"device":"x","valid_for":"4h"}`, http.StatusBadRequest, ""},
	} {
		if st, _, reason := l.issueOverride(c.bearer, c.body); st != c.status || (c.reason != "" && reason != c.reason) {
			t.Errorf("%s: HTTP %d %q, want %d %q", name, st, reason, c.status, c.reason)
		}
	}
	st, got, _ := l.issueOverride(adminTok, `{"device_id":"`+bob.DeviceID+`","valid_for":"4h"}`)
	if st != http.StatusCreated || got.DeviceID != bob.DeviceID || got.UPN != "bob@demo.test" || !got.Expires.Equal(start.Add(4*time.Hour)) {
		t.Fatalf("issue: HTTP %d %+v", st, got)
	}
	until, err := steering.CheckTamperOverride(pub, got.Code, bob.DeviceID, start.Add(time.Minute))
	if err != nil || !until.Equal(got.Expires) {
		t.Fatalf("the agent's check: %v, until %v; want %v", err, until, got.Expires)
	}
	if _, err := steering.CheckTamperOverride(pub, got.Code, alice, start.Add(time.Minute)); !errors.Is(err, steering.ErrOverrideCode) {
		t.Errorf("on another device: %v", err)
	}
	if _, err := steering.CheckTamperOverride(pub, got.Code, bob.DeviceID, start.Add(4*time.Hour)); !errors.Is(err, steering.ErrOverrideExpired) {
		t.Errorf("at the expiry: %v", err)
	}
	checkNoSecrets(t, logs, got.Code, string(tn.TamperOverridePrivateKey), adminTok)
	if !strings.Contains(got.String(), "[redacted]") || strings.Contains(got.String(), got.Code) {
		t.Errorf("the answer prints as %q", got.String())
	}
}

// TestOverrideKeyTenantFile: a private key that is not one is refused with
// its path; one whose public key no profile sets is a warning, and so is
// one without admin_token (nothing issues its codes).
func TestOverrideKeyTenantFile(t *testing.T) {
	demo, err := os.ReadFile(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("bad.yaml", append(demo, []byte("tamper_override_private_key: not-a-key\n")...))
	if err == nil || !strings.Contains(err.Error(), "tamper_override_private_key") {
		t.Fatalf("a bad key: %v", err)
	}
	_, priv := steering.NewTamperOverrideKey()
	tn, err := Parse("unused.yaml", append(demo, []byte("tamper_override_private_key: "+priv+"\n")...))
	if err != nil {
		t.Fatal(err)
	}
	var warned, noAdmin bool
	for _, w := range tn.Warnings() {
		warned = warned || strings.Contains(w.String(), "no steering profile sets its public key")
		noAdmin = noAdmin || strings.Contains(w.String(), "no admin_token")
	}
	if !warned {
		t.Fatalf("no warning for an unused key: %v", tn.Warnings())
	}
	if !noAdmin {
		t.Fatalf("no warning for a key without admin_token (the admin API is off): %v", tn.Warnings())
	}
}
