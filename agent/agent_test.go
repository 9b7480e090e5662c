package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/crypto/bcrypt"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cloud/pop"
	"github.com/ztagent/ztagent/cloud/tenant"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/platform/platformtest"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// TestMain fails the package if any test leaves a goroutine behind.
// regexp2 keeps a clock goroutine alive for a while after a timed match.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/dlclark/regexp2.runClock"))
}

const (
	testOrgKey   = "test-org-key-0123456789abcdef"
	testPassword = "correct horse battery staple"
)

const tenantYAML = `tenant: test
org_key: %s
pop:
  address: %s
  server_name: pop.test
users:
  - upn: alice@test.example
    password_hash: '%s'
  - upn: prelogon@test.example
publishers:
  - name: pub1
    token: test-publisher-token-0123456789
apps:
  - id: web
    hosts: [web.corp.test]
    tcp: "80"
    publishers: [pub1]
  - id: net
    hosts: [10.30.0.0/24]
    tcp: "22,443"
    publishers: [pub1]
  - id: echo
    hosts: [echo.corp.test]
    udp: "1-65535"
    publishers: [pub1]
steering:
  - name: all
    users: ["*"]
    apps: [web, net, echo]
policy:
  - name: all
    users: ["*"]
    apps: [web, net, echo]
    action: allow
`

// testCloud is an in-process tenant API and PoP on loopback.
type testCloud struct {
	api     *httptest.Server
	pop     *pop.Server
	caFile  string
	ca      *tenant.CA
	tenant  *tenant.Tenant
	popLn   net.Listener
	popAddr string
}

func startCloud(t *testing.T) *testCloud {
	t.Helper()
	return startCloudWith(t, tenantYAML)
}

// startCloudWith starts a cloud whose tenant file is yamlFmt with the org
// key, the PoP's address and the password hash filled in. Publishers of the
// tenant may connect to its PoP.
func startCloudWith(t *testing.T, yamlFmt string) *testCloud {
	t.Helper()
	dir := t.TempDir()
	ca, err := tenant.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	popLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := tenant.Parse("test.yaml", []byte(fmt.Sprintf(yamlFmt, testOrgKey, popLn.Addr(), hash)))
	if err != nil {
		t.Fatal(err)
	}
	popCert, err := ca.IssueServer([]string{"pop.test"})
	if err != nil {
		t.Fatal(err)
	}
	popSrv := pop.New(pop.Config{
		TLS: &tls.Config{Certificates: []tls.Certificate{popCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()},
		Authorize: func(peer *x509.Certificate, tg l7.Target) ([]string, error) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil {
				return nil, err
			}
			return tn.Authorize(p.User, tg.AppID, tg.Host, tg.Port, tg.Proto.String())
		},
		AuthorizeApp: func(peer *x509.Certificate, appID string) ([]string, error) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil {
				return nil, err
			}
			return tn.AppPublishers(p.User, appID)
		},
		Publisher: func(peer *x509.Certificate) (string, bool) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil || p.Kind != tenantapi.KindPublisher {
				return "", false
			}
			return p.Publisher, tn.Publisher(p.Publisher) != nil
		},
		Log: zap.NewNop(),
	})
	go popSrv.Serve(popLn)
	t.Cleanup(func() { popSrv.Close() })

	tlsConf, err := ca.TenantServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewUnstartedServer(tenant.NewHandler(tenant.HandlerConfig{
		Tenant: func() *tenant.Tenant { return tn }, CA: ca, Log: zap.NewNop(),
	}))
	api.TLS = tlsConf
	api.StartTLS()
	t.Cleanup(api.Close)
	return &testCloud{api: api, pop: popSrv, caFile: filepath.Join(dir, "ca.pem"), ca: ca, tenant: tn, popLn: popLn, popAddr: popLn.Addr().String()}
}

type testAgent struct {
	*Agent
	dns    *platformtest.DNS
	router *platformtest.Router
	mdm    *platformtest.MDM
	sess   *platformtest.Sessions
}

func newTestAgent(t *testing.T, cloud *testCloud, stateDir string) *testAgent {
	t.Helper()
	params, err := enroll.ParseParams([]string{
		"host=" + cloud.api.Listener.Addr().String(), "token=" + testOrgKey,
		"upn=alice@test.example", "cacert=" + cloud.caFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	ta := &testAgent{
		dns:    platformtest.NewDNS(netip.MustParseAddrPort("127.0.0.1:53")),
		router: &platformtest.Router{},
		mdm:    platformtest.NewMDM("/etc/ztagent/mdm.json"),
		sess:   &platformtest.Sessions{},
	}
	ta.Agent = New(Config{
		Params:      params,
		StateDir:    stateDir,
		SocketPath:  platformtest.ControlPath(stateDir),
		DNSListen:   "127.0.0.1:0",
		MDM:         ta.mdm,
		Sessions:    ta.sess,
		SessionPoll: 20 * time.Millisecond,
		Log:         zaptest.NewLogger(t),
		NewTUN:      newFakeTUN,
		SetTUNMTU:   setFakeTUNMTU,
		NewRouter: func(string, *zap.Logger) (platform.Router, error) {
			ta.router = &platformtest.Router{} // a fresh one per start, as on a real OS
			return ta.router, nil
		},
		NewDNS:        func(string, *zap.Logger) (platform.DNSConfigurator, error) { return ta.dns, nil },
		NewNetMonitor: func([]string, *zap.Logger) (platform.NetMonitor, error) { return platformtest.NewNetMonitor(), nil },
	})
	return ta
}

func TestAgentLifecycle(t *testing.T) {
	cloud := startCloud(t)
	state := shortTempDir(t)
	a := newTestAgent(t, cloud, state)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != ErrNotStopped {
		t.Fatalf("second Start: %v, want ErrNotStopped", err)
	}

	p := partsOf(t, a.Agent)
	st := a.Status()
	if st.State != ctlapi.StateRunning || st.Enrollment.User != "alice@test.example" || st.Config.Source != "tenant" {
		t.Fatalf("status: %+v", st)
	}
	if len(st.Apps) != 3 {
		t.Fatalf("apps: %+v", st.Apps)
	}
	rc, _ := a.router.Current()
	wantRoutes := map[netip.Prefix]bool{netip.MustParsePrefix("100.64.0.0/10"): true, netip.MustParsePrefix("10.30.0.0/24"): true}
	for _, r := range rc.Routes {
		delete(wantRoutes, r)
	}
	if len(wantRoutes) != 0 || rc.Addrs[0] != netip.MustParsePrefix("100.64.0.1/32") {
		t.Fatalf("router config %+v, missing %v", rc, wantRoutes)
	}
	if cur, ok := a.dns.Current(); !ok || cur.Servers[0] != netip.MustParseAddr("100.64.0.1") {
		t.Fatalf("OS DNS not pointed at the agent: %+v %v", cur, ok)
	}

	// Private names are answered once the tunnel is up (fail-open before).
	for deadline := time.Now().Add(10 * time.Second); !p.tunnelUp(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("tunnel not up: %+v", p.l7.Status())
		}
	}
	// Stub answers are stable per name and map back.
	pol := dnsPolicy{p}
	ans, owned := pol.Lookup("web.corp.test.")
	if !owned || !netip.MustParsePrefix("100.64.0.0/10").Contains(ans.Addr) || ans.Addr == netip.MustParseAddr("100.64.0.1") {
		t.Fatalf("Lookup(web.corp.test) = %+v, %v", ans, owned)
	}
	again, _ := pol.Lookup("WEB.corp.test")
	if again.Addr != ans.Addr {
		t.Fatalf("stub changed between lookups: %s then %s", ans.Addr, again.Addr)
	}
	if name, ok := pol.Reverse(ans.Addr); !ok || name != "web.corp.test" {
		t.Fatalf("Reverse(%s) = %q, %v", ans.Addr, name, ok)
	}
	if _, owned := pol.Lookup("www.example.com"); owned {
		t.Fatal("a public name is owned")
	}
	// A query through the proxy shows in status's DNS counters.
	q := new(dns.Msg)
	q.SetQuestion("web.corp.test.", dns.TypeA)
	if r, err := dns.Exchange(q, p.dns.Addrs()[0].String()); err != nil || len(r.Answer) != 1 {
		t.Fatalf("query web.corp.test through the proxy: %v, %v", r, err)
	}
	if c := a.Status().DNS.Counters; c.Queries < 1 || c.Local < 1 {
		t.Fatalf("DNS counters after a private query: %+v", c)
	}

	// The control API answers status and match over the socket.
	ctl := &ctlapi.Client{Socket: a.cfg.SocketPath}
	viaSocket, err := ctl.Status(ctx)
	if err != nil || viaSocket.Enrollment.DeviceID != st.Enrollment.DeviceID {
		t.Fatalf("status over the socket: %+v, %v", viaSocket, err)
	}
	for _, tc := range []struct {
		req  ctlapi.MatchRequest
		want string
	}{
		{ctlapi.MatchRequest{Host: "web.corp.test", Port: 80, Proto: "tcp"}, "l7"},
		{ctlapi.MatchRequest{Host: "web.corp.test", Port: 8080, Proto: "tcp"}, "direct"},
		{ctlapi.MatchRequest{Host: ans.Addr.String(), Port: 80, Proto: "tcp"}, "l7"},
		{ctlapi.MatchRequest{Host: "10.30.0.7", Port: 22, Proto: "tcp"}, "l7"},
		{ctlapi.MatchRequest{Host: "10.30.0.7", Port: 22, Proto: "udp"}, "direct"},
		{ctlapi.MatchRequest{Host: "web.corp.test", Port: 80, Proto: "udp"}, "direct"},
		{ctlapi.MatchRequest{Host: "www.example.com", Port: 443, Proto: "tcp"}, "direct"},
	} {
		if got, err := ctl.Match(ctx, tc.req); err != nil || got.Action != tc.want {
			t.Errorf("match %+v = %s (%s), %v; want %s", tc.req, got.Action, got.Reason, err, tc.want)
		}
	}

	// Fail-open (the default): with the tunnel down, private names resolve
	// through the OS's resolvers instead.
	cloud.pop.Close()
	for deadline := time.Now().Add(10 * time.Second); p.tunnelUp(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("tunnel still up after the PoP closed")
		}
	}
	if _, owned := pol.Lookup("web.corp.test"); owned {
		t.Fatal("fail-open: a private name is still answered with a stub while the tunnel is down")
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := a.dns.Current(); ok {
		t.Fatal("OS DNS not restored at Close")
	}
	if _, closed := a.router.Current(); !closed {
		t.Fatal("routes not removed at Close")
	}
	if _, err := os.Stat(filepath.Join(state, stubsFile)); err != nil {
		t.Fatalf("stub assignments not saved: %v", err)
	}

	// Restart with the tenant down: the cached config and the saved stub
	// assignments carry the agent.
	cloud.api.Close()
	b := newTestAgent(t, cloud, state)
	if err := b.Start(ctx); err != nil {
		t.Fatalf("restart with the tenant down: %v", err)
	}
	defer b.Close()
	if src := b.Status().Config.Source; src != "cache" {
		t.Fatalf("config source after restart = %q, want cache", src)
	}
	if name, ok := (dnsPolicy{partsOf(t, b.Agent)}).Reverse(ans.Addr); !ok || name != "web.corp.test" {
		t.Fatalf("stub %s after restart maps to %q, %v", ans.Addr, name, ok)
	}
}

// shortTempDir keeps unix socket paths under the 108-byte limit.
func shortTempDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "zta")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestPrivateDomains(t *testing.T) {
	cfg := &steering.Config{Apps: []steering.App{
		{ID: "a", Hosts: []string{"wiki.corp.example", "*.corp.example", "Jira.Other.Example."}},
		{ID: "b", Hosts: []string{"10.0.0.0/8", "10.1.0.1-10.1.0.9", "fd00::1", "192.0.2.7", "*.x.corp.example"}},
		{ID: "c", Hosts: []string{"host.lab"}},
		// Names with a '-' are names (the ad hoc check took them for ranges).
		{ID: "d", Hosts: []string{"my-app.eu-west.example", "*.eu-west.example", "10.9.0.1-10.9.0.5"}},
	}}
	got := privateDomains(slices.All(cfg.Apps))
	want := []string{"corp.example", "eu-west.example", "host.lab", "jira.other.example"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("privateDomains = %v, want %v", got, want)
	}
}

// TestReauthSignInWithTenant runs a re-authentication end to end against
// the tenant's IdP pages: the sign-in is a fresh enrollment, which the agent
// saves and restarts as.
func TestReauthSignInWithTenant(t *testing.T) {
	cloud := startCloud(t)
	a := newTestAgent(t, cloud, shortTempDir(t))
	a.cfg.OpenBrowser = signInBrowser(t, cloud, "alice@test.example", testPassword)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	old := a.Status().Enrollment.DeviceID
	p := partsOf(t, a.Agent)
	cfg := *p.snap.Load().Config()
	cfg.Client.ReauthInterval = steering.Duration(time.Minute)
	snap, err := steering.Compile(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.apply(snap)
	// The last sign-in was two minutes ago: due and past grace by the real
	// clock too, so the maintenance loop's own ticks agree with this one.
	p.lastAuth.Store(time.Now().Add(-2 * time.Minute).UnixNano())
	p.reauthTick(time.Now())

	// The user signs in: the agent restarts as the fresh enrollment, signed in now.
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := a.Status()
		if st.State == ctlapi.StateRunning && st.Enrollment.DeviceID != old && st.Enrollment.DeviceID != "" {
			if time.Since(st.Reauth.LastSignIn) > time.Minute {
				t.Fatalf("last sign-in not updated: %s", st.Reauth.LastSignIn)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not restart after the sign-in: %+v", st.Enrollment)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signInBrowser is a browser written in Go: it loads the tenant's sign-in page,
// submits the form and follows the redirect to the agent's loopback listener.
func signInBrowser(t *testing.T, cloud *testCloud, upn, password string) func(string) error {
	return signInBrowserSeeing(t, cloud, upn, password, nil)
}

// signInBrowserSeeing is signInBrowser that shows seen every redirect it
// follows (the one to the agent's loopback listener carries the IdP code).
func signInBrowserSeeing(t *testing.T, cloud *testCloud, upn, password string, seen func(*url.URL)) func(string) error {
	pem, err := os.ReadFile(cloud.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if seen != nil {
		client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			seen(req.URL)
			return nil
		}
	}
	t.Cleanup(client.CloseIdleConnections)
	hidden := regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	return func(raw string) error {
		resp, err := client.Get(raw)
		if err != nil {
			return err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		form := url.Values{"upn": {upn}, "password": {password}}
		for _, m := range hidden.FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		u, _ := url.Parse(raw)
		resp, err = client.PostForm(u.Scheme+"://"+u.Host+"/v1/idp/authorize", form)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sign-in: %s", resp.Status)
		}
		return nil
	}
}
