package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
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
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/crypto/bcrypt"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/ztagent/ztagent/enroll"
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
steering:
  - name: all
    users: ["*"]
    apps: [web, net]
policy:
  - name: all
    users: ["*"]
    apps: [web, net]
    action: allow
`

// testCloud is an in-process tenant API and PoP on loopback.
type testCloud struct {
	api    *httptest.Server
	pop    *l7.PoP
	caFile string
}

func startCloud(t *testing.T) *testCloud {
	t.Helper()
	dir := t.TempDir()
	ca, err := enroll.LoadOrCreateCA(dir)
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
	tenant, err := enroll.ParseTenant("test.yaml", []byte(fmt.Sprintf(tenantYAML, testOrgKey, popLn.Addr(), hash)))
	if err != nil {
		t.Fatal(err)
	}
	popCert, err := ca.IssueServer([]string{"pop.test"})
	if err != nil {
		t.Fatal(err)
	}
	pop := l7.NewPoP(l7.PoPConfig{
		TLS: &tls.Config{Certificates: []tls.Certificate{popCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()},
		Authorize: func(peer *x509.Certificate, tg l7.Target) ([]string, error) {
			p, err := enroll.PeerIdentity(peer)
			if err != nil {
				return nil, err
			}
			return tenant.Authorize(p.User, tg.AppID, tg.Host, tg.Port, "tcp")
		},
		Publisher: func(*x509.Certificate) (string, bool) { return "", false },
		Log:       zap.NewNop(),
	})
	go pop.Serve(popLn)
	t.Cleanup(func() { pop.Close() })

	tlsConf, err := ca.TenantServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewUnstartedServer(enroll.NewTenantHandler(enroll.TenantHandlerConfig{
		Tenant: func() *enroll.Tenant { return tenant }, CA: ca, Log: zap.NewNop(),
	}))
	api.TLS = tlsConf
	api.StartTLS()
	t.Cleanup(api.Close)
	return &testCloud{api: api, pop: pop, caFile: filepath.Join(dir, "ca.pem")}
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
		SocketPath:  filepath.Join(stateDir, "ctl.sock"),
		DNSListen:   "127.0.0.1:0",
		MDM:         ta.mdm,
		Sessions:    ta.sess,
		SessionPoll: 20 * time.Millisecond,
		Log:         zaptest.NewLogger(t),
		NewTUN:      func(string, int) (tun.Device, error) { return tuntest.NewChannelTUN().TUN(), nil },
		NewRouter: func(*zap.Logger) (platform.Router, error) {
			ta.router = &platformtest.Router{} // a fresh one per start, as on a real OS
			return ta.router, nil
		},
		NewDNS: func(string, *zap.Logger) (platform.DNSConfigurator, error) { return ta.dns, nil },
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

	st := a.Status()
	if st.State != StateRunning || st.Enrollment.User != "alice@test.example" || st.Config.Source != "tenant" {
		t.Fatalf("status: %+v", st)
	}
	if len(st.Apps) != 2 {
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
	for deadline := time.Now().Add(10 * time.Second); !a.tunnelUp(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("tunnel not up: %+v", a.l7.Status())
		}
	}
	// Stub answers are stable per name and map back.
	pol := dnsPolicy{a.Agent}
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

	// The control API answers status and match over the socket.
	var viaSocket Status
	controlGet(t, a.cfg.SocketPath, "/v1/status", &viaSocket)
	if viaSocket.Enrollment.DeviceID != st.Enrollment.DeviceID {
		t.Fatalf("status over the socket: %+v", viaSocket)
	}
	for _, tc := range []struct {
		req  MatchRequest
		want string
	}{
		{MatchRequest{Host: "web.corp.test", Port: 80, Proto: "tcp"}, "l7"},
		{MatchRequest{Host: "web.corp.test", Port: 8080, Proto: "tcp"}, "direct"},
		{MatchRequest{Host: ans.Addr.String(), Port: 80, Proto: "tcp"}, "l7"},
		{MatchRequest{Host: "10.30.0.7", Port: 22, Proto: "tcp"}, "l7"},
		{MatchRequest{Host: "10.30.0.7", Port: 22, Proto: "udp"}, "direct"},
		{MatchRequest{Host: "www.example.com", Port: 443, Proto: "tcp"}, "direct"},
	} {
		if got := Explain(a.snap.Load(), a.stubs, tc.req); got.Action != tc.want {
			t.Errorf("match %+v = %s (%s), want %s", tc.req, got.Action, got.Reason, tc.want)
		}
	}

	// Fail-open (the default): with the tunnel down, private names resolve
	// through the OS's resolvers instead.
	cloud.pop.Close()
	for deadline := time.Now().Add(10 * time.Second); a.tunnelUp(); time.Sleep(20 * time.Millisecond) {
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
	if name, ok := (dnsPolicy{b.Agent}).Reverse(ans.Addr); !ok || name != "web.corp.test" {
		t.Fatalf("stub %s after restart maps to %q, %v", ans.Addr, name, ok)
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	cloud := startCloud(t)
	state := shortTempDir(t)
	a := newTestAgent(t, cloud, state)
	// Wrong org key: enrollment fails before anything is configured.
	a.cfg.Params, _ = enroll.ParseParams([]string{
		"host=" + cloud.api.Listener.Addr().String(), "token=wrong-key-0123456789",
		"upn=alice@test.example", "cacert=" + cloud.caFile,
	})
	if err := a.Start(context.Background()); err == nil {
		t.Fatal("Start with a wrong org key succeeded")
	}
	if a.Status().State != StateStopped {
		t.Fatalf("state after a failed start: %s", a.Status().State)
	}
	if calls := a.dns.Calls(); len(calls) != 0 {
		t.Fatalf("DNS touched by a failed start: %v", calls)
	}
	if _, err := os.Stat(a.cfg.SocketPath); err == nil {
		t.Fatal("control socket left behind")
	}
}

func controlGet(t *testing.T, sock, path string, out any) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return platform.DialControl(ctx, sock)
		},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://ztagent" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
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
	got := privateDomains(cfg)
	want := []string{"corp.example", "eu-west.example", "host.lab", "jira.other.example"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("privateDomains = %v, want %v", got, want)
	}
}

func TestMDMOverridesInstallParameters(t *testing.T) {
	cloud := startCloud(t)
	a := newTestAgent(t, cloud, shortTempDir(t))
	// MDM names the user; the install parameters name someone else.
	a.cfg.Params.UPN = "nobody@test.example"
	a.mdm.Push(map[string]string{"upn": "alice@test.example"})
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	st := a.Status()
	if st.Enrollment.User != "alice@test.example" {
		t.Fatalf("enrolled as %q, want the MDM's alice@test.example", st.Enrollment.User)
	}
	sources := map[string]string{}
	for _, s := range st.Settings {
		sources[s.Key] = s.Source
		if s.Key == "token" && s.Value == testOrgKey {
			t.Fatal("status shows the org key")
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
	cloud := startCloud(t)
	a := newTestAgent(t, cloud, shortTempDir(t))
	ctx := context.Background()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	old := a.Status().Enrollment.DeviceID

	// A rejected parameter changes nothing.
	if _, err := a.Reenroll(ctx, []string{"token=not-the-org-key-012345"}); err == nil {
		t.Fatal("re-enrollment with a wrong org key succeeded")
	}
	if st := a.Status(); st.State != StateRunning || st.Enrollment.DeviceID != old {
		t.Fatalf("after a failed re-enrollment: %s, device %s (was %s)", st.State, st.Enrollment.DeviceID, old)
	}

	id, err := a.Reenroll(ctx, []string{"token=" + testOrgKey})
	if err != nil {
		t.Fatal(err)
	}
	if id.DeviceID == old {
		t.Fatal("re-enrollment kept the old device key")
	}
	// Start waits for the restart; once it has run, the agent is up again as
	// the new device.
	a.lifeMu.Lock()
	a.lifeMu.Unlock()
	if st := a.Status(); st.State != StateRunning || st.Enrollment.DeviceID != id.DeviceID {
		t.Fatalf("after re-enrollment: %s, device %s, want %s", st.State, st.Enrollment.DeviceID, id.DeviceID)
	}
	saved, err := enroll.LoadIdentity(a.cfg.StateDir)
	if err != nil || saved.DeviceID != id.DeviceID {
		t.Fatalf("saved identity: %v, %v", saved, err)
	}
}

func TestIdentityFollowsLogins(t *testing.T) {
	cases := []struct {
		name   string
		params []string
		// whom the agent runs as with nobody logged in, and with alice
		idle, login         string
		idleKind, loginKind string
	}{
		{"pre-logon then the machine enrollment", []string{"prelogonuser=prelogon@test.example"},
			"prelogon@test.example", "alice@test.example", PrincipalPreLogon, PrincipalMachine},
		{"pre-logon then per-user config", []string{"prelogonuser=prelogon@test.example", "mode=peruserconfig", "domain=test.example"},
			"prelogon@test.example", "alice@test.example", PrincipalPreLogon, PrincipalUser},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cloud := startCloud(t)
			a := newTestAgent(t, cloud, shortTempDir(t))
			var err error
			if a.cfg.Params, err = a.cfg.Params.Update(tc.params); err != nil {
				t.Fatal(err)
			}
			if err := a.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			waitFor := func(user, kind string) {
				t.Helper()
				deadline := time.Now().Add(15 * time.Second)
				for {
					st := a.Status()
					if st.State == StateRunning && st.Enrollment.User == user && st.Enrollment.As == kind {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("agent runs as %s %q (%s), want %s %q", st.Enrollment.As, st.Enrollment.User, st.State, kind, user)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			waitFor(tc.idle, tc.idleKind)
			a.sess.Login(platform.Session{ID: "2", User: "alice", Active: true, Class: "user"})
			waitFor(tc.login, tc.loginKind)
			a.sess.Logout("2")
			waitFor(tc.idle, tc.idleKind)
		})
	}
}

func TestReauthGracePeriod(t *testing.T) {
	cloud := startCloud(t)
	a := newTestAgent(t, cloud, shortTempDir(t))
	var opened atomic.Int32
	a.cfg.OpenBrowser = func(string) error { opened.Add(1); return nil } // the user never signs in
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for deadline := time.Now().Add(10 * time.Second); !a.tunnelUp(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("tunnel not up")
		}
	}
	// The tenant turns re-authentication on: every minute, one minute's grace.
	cfg := *a.snap.Load().Config()
	cfg.Client.ReauthInterval = steering.Duration(time.Minute)
	cfg.Client.ReauthGrace = steering.Duration(time.Minute)
	snap, err := steering.Compile(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.apply(snap)
	last := a.lastSignIn()

	a.reauthTick(last.Add(30 * time.Second))
	if got := a.reauthPhase(last.Add(30 * time.Second)); got != ReauthOK || opened.Load() != 0 {
		t.Fatalf("inside the interval: phase %s, sign-in pages opened %d", got, opened.Load())
	}
	a.reauthTick(last.Add(90 * time.Second))
	for deadline := time.Now().Add(10 * time.Second); opened.Load() != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sign-in page opened %d times when re-authentication fell due, want 1", opened.Load())
		}
	}
	if !a.tunnelUp() {
		t.Fatal("tunnel torn down during the grace period")
	}
	a.reauthTick(last.Add(121 * time.Second))
	if a.tunnelUp() || a.l7.Status().State != "closed" {
		t.Fatalf("tunnel still %s after the grace period", a.l7.Status().State)
	}
	if opened.Load() != 1 {
		t.Fatalf("sign-in page opened %d times, want 1 (one prompt at a time)", opened.Load())
	}
	if _, owned := (dnsPolicy{a.Agent}).Lookup("web.corp.test"); owned {
		t.Fatal("private names still answered with stubs after the tunnel was torn down (fail-open)")
	}
}

func TestReauthSignIn(t *testing.T) {
	cloud := startCloud(t)
	a := newTestAgent(t, cloud, shortTempDir(t))
	a.cfg.OpenBrowser = signInBrowser(t, cloud, "alice@test.example", testPassword)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	old := a.Status().Enrollment.DeviceID
	cfg := *a.snap.Load().Config()
	cfg.Client.ReauthInterval = steering.Duration(time.Minute)
	snap, err := steering.Compile(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.apply(snap)
	a.reauthTick(a.lastSignIn().Add(2 * time.Minute)) // due and past grace

	// The user signs in: the agent restarts as the fresh enrollment, signed in now.
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := a.Status()
		if st.State == StateRunning && st.Enrollment.DeviceID != old && st.Enrollment.DeviceID != "" {
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
	pem, err := os.ReadFile(cloud.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
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
