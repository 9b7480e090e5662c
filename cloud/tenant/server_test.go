package tenant

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ztagent/ztagent/cloud/publisher"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const demoOrgKey = "demo-org-key-8c1f4e27b9d35a60"

// lab is a tenant API on an httptest TLS server with the real handler.
type lab struct {
	t      *testing.T
	srv    *httptest.Server
	ca     *CA
	caFile string
	state  string // the tenant API's state directory
	tenant atomic.Pointer[Tenant]
	opts   labOptions
	h      *tenantHandler
}

func newLab(t *testing.T, tn *Tenant, log *zap.Logger) *lab {
	t.Helper()
	return newLabWithClock(t, tn, log, nil)
}

func (l *lab) startServer(log *zap.Logger, now func() time.Time) {
	tc, err := l.ca.TenantServerTLS([]string{"127.0.0.1", "tenant.demo.test"})
	if err != nil {
		l.t.Fatal(err)
	}
	if log == nil {
		log = zaptest.NewLogger(l.t)
	}
	l.h = NewHandler(HandlerConfig{Tenant: l.tenant.Load, CA: l.ca, Log: log, Now: now, StateDir: l.state}).(*tenantHandler)
	var h http.Handler = l.h
	if l.opts.wrap != nil {
		h = l.opts.wrap(h)
	}
	l.srv = httptest.NewUnstartedServer(h)
	l.srv.EnableHTTP2 = l.opts.h2
	l.srv.TLS = tc
	l.srv.StartTLS()
	l.t.Cleanup(l.srv.Close)
}

func (l *lab) params(upn string, extra ...string) enroll.Params {
	l.t.Helper()
	args := append([]string{"host=" + l.srv.URL, "token=" + demoOrgKey, "upn=" + upn, "cacert=" + l.caFile}, extra...)
	p, err := enroll.ParseParams(args)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *lab) enroll(upn string) *enroll.Identity {
	l.t.Helper()
	id, err := enroll.EnrollUPN(context.Background(), l.params(upn), zaptest.NewLogger(l.t))
	if err != nil {
		l.t.Fatal(err)
	}
	return id
}

// profileApps is the sorted app list of one steering profile of the demo
// tenant, so that adding a demo app does not break these tests.
func profileApps(t *testing.T, name string) []string {
	t.Helper()
	for _, p := range loadDemo(t).Steering {
		if p.Name == name {
			return sorted(p.Apps)
		}
	}
	t.Fatalf("demo tenant has no steering profile %s", name)
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func appIDs(cfg *tenantapi.AgentConfig) []string {
	var ids []string
	for _, a := range cfg.Steering.Apps {
		ids = append(ids, a.ID)
	}
	return ids
}

func TestEnrollAndFetchConfig(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	id := l.enroll("Alice@demo.test")
	if id.Tenant != "demo" || id.User != "alice@demo.test" || id.DeviceID == "" || id.TenantURL != l.srv.URL {
		t.Fatalf("identity = %+v", id)
	}
	if _, err := id.Cert.Leaf.Verify(x509.VerifyOptions{Roots: id.Roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("device certificate does not chain to the tenant CA: %v", err)
	}

	dir := t.TempDir()
	if err := id.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := enroll.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.DeviceID != id.DeviceID || !loaded.Cert.Leaf.Equal(id.Cert.Leaf) || loaded.APIRoots == nil {
		t.Fatalf("loaded identity differs: %+v", loaded)
	}

	cc := newCC(t, loaded)
	defer cc.Close()
	cfg, etag, err := cc.Fetch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := profileApps(t, "engineering"); !slices.Equal(sorted(appIDs(cfg)), want) || !slices.Contains(want, "secret") {
		t.Errorf("alice's apps = %v, want %v", appIDs(cfg), want)
	}
	if cfg.PoP.Address != "10.10.0.1:8443" || cfg.User != "alice@demo.test" || etag == "" {
		t.Errorf("config = %+v etag %q", cfg, etag)
	}
	if _, tag2, err := cc.Fetch(context.Background(), etag); !errors.Is(err, enroll.ErrNotModified) || tag2 != etag {
		t.Errorf("refetch with ETag: err %v, etag %q", err, tag2)
	}

	// A tenant reload that changes alice's config changes the ETag.
	changed := loadDemo(t)
	changed.PoP.Address = "10.10.0.2:8443"
	l.tenant.Store(changed)
	cfg, tag3, err := cc.Fetch(context.Background(), etag)
	if err != nil || tag3 == etag || cfg.PoP.Address != "10.10.0.2:8443" {
		t.Errorf("after reload: %v, etag %q (was %q)", err, tag3, etag)
	}
}

func TestBobIsNotSteeredToSecret(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	cc := newCC(t, l.enroll("bob@demo.test"))
	defer cc.Close()
	cfg, _, err := cc.Fetch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := profileApps(t, "everyone"); !slices.Equal(sorted(appIDs(cfg)), want) || slices.Contains(want, "secret") {
		t.Errorf("bob's apps = %v, want %v", appIDs(cfg), want)
	}
}

func TestEnrollRefusals(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name   string
		p      enroll.Params
		reason string
		status int
		msg    string // substring of the one-sentence message
	}{
		{"wrong org key", withParam(l.params("alice@demo.test"), func(p *enroll.Params) { p.Token = "not-the-org-key-at-all" }),
			tenantapi.ReasonBadOrgKey, 401, "tenant rejected the org key (token=): check the key in the admin console"},
		{"unknown user", l.params("carol@demo.test"), tenantapi.ReasonUnknownUser, 403, "has no user carol@demo.test (upn=)"},
		{"unreachable", withParam(l.params("alice@demo.test"), func(p *enroll.Params) { p.Host = deadAddr }),
			enroll.ReasonUnreachable, 0, "cannot reach tenant API at https://" + deadAddr + ": connection refused — check host= and that the tenant is running"},
		{"untrusted", withParam(l.params("alice@demo.test"), func(p *enroll.Params) { p.CACert = "" }),
			enroll.ReasonUntrustedCert, 0, "pass cacert="},
		{"wrong name", withParam(l.params("alice@demo.test"), func(p *enroll.Params) {
			p.Host = strings.Replace(l.srv.URL, "127.0.0.1", "localhost", 1)
		}), enroll.ReasonUntrustedCert, 0, "not valid for the name in host="},
		{"missing cacert file", withParam(l.params("alice@demo.test"), func(p *enroll.Params) { p.CACert = "/nonexistent/ca.pem" }),
			enroll.ReasonBadParameter, 0, "cannot read cacert=/nonexistent/ca.pem"},
		{"no token", withParam(l.params("alice@demo.test"), func(p *enroll.Params) { p.Token = "" }),
			enroll.ReasonBadParameter, 0, "token= is not set"},
		{"other tenant", withParam(l.params("alice@demo.test"), func(p *enroll.Params) { p.Tenant = "acme" }),
			enroll.ReasonBadParameter, 0, `serves tenant "demo", not tenant=acme`},
		{"idp", withParam(l.params("alice@demo.test"), func(p *enroll.Params) { p.InstallMode = "IDP" }),
			enroll.ReasonUnsupportedInstall, 0, "installmode=IDP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := enroll.EnrollUPN(context.Background(), tc.p, zaptest.NewLogger(t))
			var e *enroll.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			t.Log(e.Error())
			if e.Reason != tc.reason || e.Status != tc.status || !strings.Contains(e.Error(), tc.msg) {
				t.Errorf("got reason %q status %d %q\nwant reason %q status %d containing %q",
					e.Reason, e.Status, e.Error(), tc.reason, tc.status, tc.msg)
			}
			if strings.Contains(e.Error(), demoOrgKey) {
				t.Error("message leaks the org key")
			}
		})
	}
}

func newCC(t *testing.T, id *enroll.Identity) *enroll.ConfigClient {
	t.Helper()
	cc, err := enroll.NewConfigClient(id, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func (l *lab) enrollPublisher(t *testing.T) tls.Certificate {
	t.Helper()
	p, err := publisher.Enroll(context.Background(), publisher.Enrollment{TenantURL: l.srv.URL,
		Roots: l.ca.Pool(), Name: "pub1", Token: "demo-publisher-token-4a9e0c7d21f3"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	peer, err := tenantapi.PeerIdentity(p.Cert.Leaf)
	if err != nil || peer != (tenantapi.Peer{Tenant: "demo", Kind: tenantapi.KindPublisher, Publisher: "pub1"}) {
		t.Fatalf("publisher identity %+v, %v", peer, err)
	}
	if !p.Roots.Equal(l.ca.Pool()) || p.PoP != (tenantapi.PoPInfo{Address: "10.10.0.1:8443", ServerName: "pop.demo.test"}) {
		t.Fatalf("publisher enrollment returned CA/PoP %+v", p.PoP)
	}
	return p.Cert
}

func withParam(p enroll.Params, f func(*enroll.Params)) enroll.Params { f(&p); return p }

// rawRequest sends a request to the lab with an optional client certificate.
func (l *lab) rawRequest(t *testing.T, method, path, body string, cert *tls.Certificate) (*http.Response, string) {
	t.Helper()
	tc := &tls.Config{RootCAs: l.ca.Pool()}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, l.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	e := readError(resp)
	if e == nil {
		return resp, ""
	}
	return resp, e.Reason
}

// readError decodes a tenant API error body; nil when the body is not one.
func readError(resp *http.Response) *tenantapi.Error {
	var e tenantapi.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Reason == "" {
		return nil
	}
	e.Status = resp.StatusCode
	return &e
}

func TestConfigNeedsDeviceCertificate(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	resp, reason := l.rawRequest(t, "GET", "/v1/config", "", nil)
	if resp.StatusCode != 401 || reason != tenantapi.ReasonClientCertRequired {
		t.Errorf("no client cert: %d %q", resp.StatusCode, reason)
	}
	pub := l.enrollPublisher(t)
	resp, reason = l.rawRequest(t, "GET", "/v1/config", "", &pub)
	if resp.StatusCode != 403 || reason != tenantapi.ReasonNotADevice {
		t.Errorf("publisher cert: %d %q", resp.StatusCode, reason)
	}
	// A certificate from another tenant's CA fails the TLS handshake itself.
	other := newLab(t, loadDemo(t), nil).enroll("alice@demo.test")
	other.TenantURL, other.APIRoots = l.srv.URL, l.ca.Pool()
	cc := newCC(t, other)
	defer cc.Close()
	_, _, err := cc.Fetch(context.Background(), "")
	var e *enroll.Error
	t.Log(err)
	if !errors.As(err, &e) || !strings.Contains(e.Error(), "enroll the device again") {
		t.Errorf("foreign device cert: %v", err)
	}
}

func TestConfigForRemovedUser(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	id := l.enroll("bob@demo.test")
	tn := loadDemo(t)
	delete(tn.users, "bob@demo.test")
	l.tenant.Store(tn)
	cc := newCC(t, id)
	defer cc.Close()
	_, _, err := cc.Fetch(context.Background(), "")
	var e *enroll.Error
	if !errors.As(err, &e) || e.Status != 403 || e.Reason != tenantapi.ReasonUnknownUser {
		t.Errorf("removed user: %v", err)
	}
}

func TestHandlerRejectsBadRequests(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	big := `{"org_key":"` + strings.Repeat("x", tenantapi.MaxRequestBody) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		reason                   string
	}{
		{"unknown path", "GET", "/v1/nope", "", 404, tenantapi.ReasonNotFound},
		{"wrong method", "GET", "/v1/enroll/upn", "", 405, tenantapi.ReasonMethodNotAllowed},
		{"empty body", "POST", "/v1/enroll/upn", "", 400, tenantapi.ReasonBadRequest},
		{"not json", "POST", "/v1/enroll/upn", "org_key=x", 400, tenantapi.ReasonBadRequest},
		{"unknown field", "POST", "/v1/enroll/upn", `{"org_key":"k","admin":true}`, 400, tenantapi.ReasonBadRequest},
		{"trailing data", "POST", "/v1/enroll/upn", `{"org_key":"k"} {}`, 400, tenantapi.ReasonBadRequest},
		{"too large", "POST", "/v1/enroll/upn", big, 413, tenantapi.ReasonBodyTooLarge},
		{"bad csr", "POST", "/v1/enroll/upn",
			`{"org_key":"` + demoOrgKey + `","upn":"alice@demo.test","device_name":"pc","csr":"junk"}`, 400, tenantapi.ReasonBadCSR},
		{"bad device name", "POST", "/v1/enroll/upn",
			`{"org_key":"` + demoOrgKey + `","upn":"alice@demo.test","device_name":"a\u0000b","csr":"junk"}`, 400, tenantapi.ReasonBadRequest},
		{"publisher bad token", "POST", "/v1/publishers/enroll", `{"name":"pub1","token":"wrong","csr":""}`, 401, tenantapi.ReasonBadPublisherToken},
		{"publisher unknown", "POST", "/v1/publishers/enroll", `{"name":"pub9","token":"wrong","csr":""}`, 401, tenantapi.ReasonBadPublisherToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, reason := l.rawRequest(t, tc.method, tc.path, tc.body, nil)
			if resp.StatusCode != tc.status || reason != tc.reason {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, reason, tc.status, tc.reason)
			}
		})
	}
}

func TestEtagMatch(t *testing.T) {
	const tag = `"abc"`
	for header, want := range map[string]bool{
		`"abc"`: true, `W/"abc"`: true, `"x", "abc"`: true, `*`: true,
		``: false, `"abd"`: false, `abc`: false,
	} {
		if got := etagMatch(header, tag); got != want {
			t.Errorf("etagMatch(%q) = %v", header, got)
		}
	}
}

func TestEnrollHonoursContext(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := enroll.EnrollUPN(ctx, l.params("alice@demo.test"), zaptest.NewLogger(t))
	var e *enroll.Error
	if !errors.As(err, &e) || e.Reason != enroll.ReasonUnreachable {
		t.Errorf("cancelled enrollment: %v", err)
	}
}

func TestCAIssuePublisher(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssuePublisher("demo", "pub1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := tenantapi.PeerIdentity(cert.Leaf); err != nil || p.Publisher != "pub1" || p.Tenant != "demo" {
		t.Errorf("in-process publisher identity %+v, %v", p, err)
	}
}

func TestFailedEnrollmentsAreThrottled(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	bad := withParam(l.params("alice@demo.test"), func(p *enroll.Params) { p.Token = "guess-guess-guess-guess" })
	for i := range enrollMaxFails {
		var e *enroll.Error
		if _, err := enroll.EnrollUPN(context.Background(), bad, zaptest.NewLogger(t)); !errors.As(err, &e) || e.Reason != tenantapi.ReasonBadOrgKey {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	// Now even the right key is refused from this address, before it is compared.
	_, err := enroll.EnrollUPN(context.Background(), l.params("alice@demo.test"), zaptest.NewLogger(t))
	var e *enroll.Error
	if !errors.As(err, &e) || e.Status != 429 || e.Reason != tenantapi.ReasonTooManyAttempts ||
		!strings.Contains(e.Error(), "then retry after ") || strings.Contains(e.Error(), "after s") {
		t.Fatalf("after %d failures: %v", enrollMaxFails, err)
	}
}

func TestFailLimiterWindow(t *testing.T) {
	l := &failLimiter{window: time.Minute, maxFails: 2, maxAddrs: 2, fails: map[string]int{}}
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	l.fail("10.0.0.1:1000", t0)
	l.fail("10.0.0.1:2000", t0) // same host, other port
	if b, until := l.blocked("10.0.0.1:3000", t0.Add(time.Second)); !b || !until.Equal(t0.Add(time.Minute)) {
		t.Errorf("not blocked after 2 failures (until %v)", until)
	}
	if b, _ := l.blocked("10.0.0.2:1", t0); b {
		t.Error("another address is blocked")
	}
	// The map is full with two addresses: a third is not tracked, never blocked.
	l.fail("10.0.0.2:1", t0)
	for range 5 {
		l.fail("10.0.0.3:1", t0)
	}
	if b, _ := l.blocked("10.0.0.3:1", t0); b {
		t.Error("untracked address blocked")
	}
	if b, _ := l.blocked("10.0.0.1:1", t0.Add(time.Minute)); b {
		t.Error("still blocked in the next window")
	}
}
