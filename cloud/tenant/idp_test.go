package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

const alicePassword = "correct horse battery staple"

// idpTenant is the demo tenant where alice has a password for the sign-in page.
func idpTenant(t testing.TB, extra string) *Tenant {
	t.Helper()
	demo, err := os.ReadFile(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Replace(string(demo), "    groups: [engineering]\n",
		"    groups: [engineering]\n    password_hash: '"+string(hash)+"'\n", 1) + extra
	tn, err := Parse("idp.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// formBrowser is a browser written in Go: it loads the sign-in page, submits
// the form with upn and password and follows the redirect to the loopback.
// tamper may change the submitted form.
type formBrowser struct {
	t      *testing.T
	client *http.Client
	upn    string
	pw     string
	tamper func(url.Values)
	status int // of the form submission's final answer
}

func (b *formBrowser) open(raw string) error {
	resp, err := b.client.Get(raw)
	if err != nil {
		return err
	}
	page := readAll(resp)
	if resp.StatusCode != http.StatusOK {
		return errors.New("sign-in page: " + resp.Status)
	}
	form := url.Values{"upn": {b.upn}, "password": {b.pw}}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	if b.tamper != nil {
		b.tamper(form)
	}
	u, _ := url.Parse(raw)
	resp, err = b.client.PostForm(u.Scheme+"://"+u.Host+"/v1/idp/authorize", form)
	if err != nil {
		return err
	}
	readAll(resp)
	b.status = resp.StatusCode
	return nil
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func (l *lab) idpParams(extra ...string) enroll.Params {
	l.t.Helper()
	p, err := enroll.ParseParams(append([]string{"host=" + l.srv.URL, "installmode=IDP", "cacert=" + l.caFile}, extra...))
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func TestEnrollIdP(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	l := newLabWithClock(t, idpTenant(t, ""), log, nil)
	tests := []struct {
		name, upn, pw string
		tamper        func(url.Values)
		reason        string
		wantStatus    int
	}{
		{name: "ok", upn: "alice@demo.test", pw: alicePassword, wantStatus: http.StatusOK},
		{name: "wrong password", upn: "alice@demo.test", pw: "wrong-password-1", reason: enroll.ReasonSignInFailed, wantStatus: http.StatusUnauthorized},
		{name: "user without password", upn: "bob@demo.test", pw: alicePassword, reason: enroll.ReasonSignInFailed, wantStatus: http.StatusUnauthorized},
		{name: "unknown user", upn: "eve@demo.test", pw: alicePassword, reason: enroll.ReasonSignInFailed, wantStatus: http.StatusUnauthorized},
		{name: "redirect elsewhere", upn: "alice@demo.test", pw: alicePassword, reason: enroll.ReasonSignInFailed,
			tamper: func(f url.Values) { f.Set("redirect_uri", "http://evil.example:80/cb") }, wantStatus: http.StatusBadRequest},
		{name: "forged state", upn: "alice@demo.test", pw: alicePassword, reason: enroll.ReasonSignInFailed,
			tamper: func(f url.Values) { f.Set("state", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") }, wantStatus: http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &formBrowser{t: t, client: l.srv.Client(), upn: tc.upn, pw: tc.pw, tamper: tc.tamper}
			ctx := context.Background()
			if tc.reason != "" {
				// The agent waits for a sign-in that never comes back.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
			}
			id, err := enroll.EnrollIdP(ctx, l.idpParams(), b.open, log)
			if b.status != tc.wantStatus {
				t.Errorf("form submission answered HTTP %d, want %d", b.status, tc.wantStatus)
			}
			if tc.reason == "" {
				checkEnrollOutcomeFor(t, "alice@demo.test", id, err, "", "")
				return
			}
			checkEnrollOutcome(t, id, err, tc.reason, "sign-in page in the browser in time")
		})
	}
	checkNoSecrets(t, logs, alicePassword, "wrong-password-1")
}

// TestIdPCodeExchange drives the token endpoint directly: a code works once,
// only with its verifier and redirect URI, and only within its lifetime.
func TestIdPCodeExchange(t *testing.T) {
	now := date(2026, 11, 23)
	clock := func() time.Time { return now }
	l := newLabWithClock(t, idpTenant(t, ""), zap.NewNop(), clock)
	// Sign in with a browser that stops at the redirect, to get the code.
	var redirect *url.URL
	client := *l.srv.Client()
	client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		redirect = req.URL
		return http.ErrUseLastResponse
	}
	signIn := func(verifier string) (code, redirectURI string) {
		q := url.Values{"client_id": {tenantapi.IdPClientID}, "redirect_uri": {"http://127.0.0.1:9/cb"},
			"code_challenge": {tenantapi.PKCES256(verifier)}, "code_challenge_method": {"S256"}, "state": {tenantapi.RandomB64URL(20)}}
		b := &formBrowser{t: t, client: &client, upn: "alice@demo.test", pw: alicePassword}
		if err := b.open(l.srv.URL + "/v1/idp/authorize?" + q.Encode()); err != nil || redirect == nil {
			t.Fatalf("sign-in: %v", err)
		}
		return redirect.Query().Get("code"), "http://127.0.0.1:9/cb"
	}
	// exchange posts the token request and returns the refusal's reason, ""
	// when a certificate was issued.
	exchange := func(code, verifier, redirectURI string) string {
		_, csr, _ := tenantapi.NewKey("x")
		body, _ := json.Marshal(tenantapi.IdPTokenRequest{ClientID: tenantapi.IdPClientID, Code: code, CodeVerifier: verifier,
			RedirectURI: redirectURI, DeviceName: "pc", CSR: csr})
		resp, reason := l.rawRequest(t, http.MethodPost, "/v1/idp/token", string(body), nil)
		if resp.StatusCode != http.StatusOK && reason == "" {
			return resp.Status
		}
		return reason
	}
	verifier := tenantapi.RandomB64URL(32)
	code, ru := signIn(verifier)
	if r := exchange(code, tenantapi.RandomB64URL(32), ru); r != tenantapi.ReasonBadIdPCode {
		t.Errorf("wrong verifier: %v", r)
	}
	if r := exchange(code, verifier, ru); r != tenantapi.ReasonBadIdPCode {
		t.Errorf("code reused after a failed attempt: %v", r)
	}
	code, ru = signIn(verifier)
	if r := exchange(code, verifier, "http://127.0.0.1:10/cb"); r != tenantapi.ReasonBadIdPCode {
		t.Errorf("other redirect_uri: %v", r)
	}
	code, ru = signIn(verifier)
	now = now.Add(idpCodeTTL)
	if r := exchange(code, verifier, ru); r != tenantapi.ReasonBadIdPCode {
		t.Errorf("expired code: %v", r)
	}
	code, ru = signIn(verifier)
	if r := exchange(code, verifier, ru); r != "" {
		t.Errorf("good exchange: %s", r)
	}
	if r := exchange(code, verifier, ru); r != tenantapi.ReasonBadIdPCode {
		t.Errorf("code reused after success: %v", r)
	}
}

func isReason(err error, reason string) bool {
	var e *enroll.Error
	return errors.As(err, &e) && e.Reason == reason
}

func TestIdPAuthorizeRequest(t *testing.T) {
	good := url.Values{"client_id": {tenantapi.IdPClientID}, "redirect_uri": {"http://127.0.0.1:5000/cb"},
		"code_challenge": {tenantapi.PKCES256("v")}, "code_challenge_method": {"S256"}, "state": {"0123456789abcdef"}}
	tests := []struct {
		name, key, value, want string
	}{
		{"good", "", "", ""},
		{"ipv6 loopback", "redirect_uri", "http://[::1]:5000/cb", ""},
		{"https redirect", "redirect_uri", "https://127.0.0.1:5000/cb", "loopback redirect"},
		{"name redirect", "redirect_uri", "http://localhost:5000/cb", "not a name"},
		{"other loopback", "redirect_uri", "http://127.0.0.2:5000/cb", "not a name"},
		{"remote redirect", "redirect_uri", "http://10.0.0.1:5000/cb", "not a name"},
		{"no port", "redirect_uri", "http://127.0.0.1/cb", "port"},
		{"query in redirect", "redirect_uri", "http://127.0.0.1:5000/cb?x=1", "loopback redirect"},
		{"plain pkce", "code_challenge_method", "plain", "S256"},
		{"short challenge", "code_challenge", "abc", "43 base64url"},
		{"short state", "state", "abc", "state must be"},
		{"other client", "client_id", "evil", "client_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range good {
				q[k] = v
			}
			if tc.key != "" {
				q.Set(tc.key, tc.value)
			}
			_, bad := parseIdPRequest(q)
			if (tc.want == "") != (bad == "") || !strings.Contains(bad, tc.want) {
				t.Fatalf("got %q, want %q", bad, tc.want)
			}
		})
	}
}

func TestEnrollDispatch(t *testing.T) {
	l := newLab(t, idpTenant(t, ""), zap.NewNop())
	_, err := enroll.Enroll(context.Background(), l.idpParams(), nil, zap.NewNop())
	if !isReason(err, enroll.ReasonUnsupportedInstall) {
		t.Errorf("IDP without a browser: %v", err)
	}
	id, err := enroll.EnrollPreLogon(context.Background(), l.idpParams("token="+demoOrgKey, "prelogonuser=bob@demo.test"), zap.NewNop())
	if err != nil || id.User != "bob@demo.test" {
		t.Errorf("pre-logon: %v", err)
	}
}

// TestIdPUnderSecureEnrollment: an enforcing tenant lets IdP enrollment through
// without an auth token (the sign-in is the proof) but not pre-logon
// enrollment, which has no user to sign in; a token given to IdP enrollment
// selects the encrypted initial config.
func TestIdPUnderSecureEnrollment(t *testing.T) {
	extra := "secure_enrollment:\n  enforce: true\n  tokens:\n    - {name: s1, auth_token: " + authSet1 +
		", encryption_token: " + encSet1 + ", created: 2026-11-01}\n"
	l := newLabWithClock(t, idpTenant(t, extra), zap.NewNop(), func() time.Time { return date(2026, 11, 23) })
	b := &formBrowser{t: t, client: l.srv.Client(), upn: "alice@demo.test", pw: alicePassword}
	id, err := enroll.EnrollIdP(context.Background(), l.idpParams(), b.open, zap.NewNop())
	checkEnrollOutcomeFor(t, "alice@demo.test", id, err, "", "")
	id, err = enroll.EnrollIdP(context.Background(), l.idpParams("enrollauthtoken="+authSet1, "enrollencryptiontoken="+encSet1), b.open, zap.NewNop())
	checkEnrollOutcomeFor(t, "alice@demo.test", id, err, "", "")

	_, err = enroll.EnrollPreLogon(context.Background(), l.idpParams("token="+demoOrgKey, "prelogonuser=bob@demo.test"), zap.NewNop())
	checkEnrollOutcome(t, nil, err, tenantapi.ReasonSecureEnrollment, "re-run with enrollauthtoken=")
	id, err = enroll.EnrollPreLogon(context.Background(), l.idpParams("token="+demoOrgKey, "prelogonuser=bob@demo.test",
		"enrollauthtoken="+authSet1, "enrollencryptiontoken="+encSet1), zap.NewNop())
	if err != nil || id.User != "bob@demo.test" || id.InitialConfig == nil {
		t.Fatalf("pre-logon with token: %v", err)
	}
}
