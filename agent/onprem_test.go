package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/platform/platformtest"
	"github.com/ztagent/ztagent/steering"
)

var dnsDetection = &steering.OnPremDetection{DNS: &steering.OnPremDNS{Name: "onprem.corp.test", Address: "10.1.2.3"}}

// TestOnPremDecision drives the detector with a fake probe: a flip is
// reported once, an unchanged outcome not at all, detection off is off
// premises, and a check cut short by teardown changes nothing.
func TestOnPremDecision(t *testing.T) {
	var flips []bool
	answer, why := false, ""
	d := newOnPremDetector(func(ctx context.Context, o *steering.OnPremDetection) (bool, string) {
		return answer, why
	}, zap.NewNop(), func(on bool) { flips = append(flips, on) })
	ctx := context.Background()
	now := time.Unix(1000, 0)
	steps := []struct {
		name   string
		o      *steering.OnPremDetection
		answer bool
		want   bool
		flips  int
	}{
		{"starts off premises", dnsDetection, false, false, 0},
		{"found", dnsDetection, true, true, 1},
		{"still found", dnsDetection, true, true, 1},
		{"lost", dnsDetection, false, false, 2},
		{"found again", dnsDetection, true, true, 3},
		{"detection removed", nil, true, false, 4},
	}
	for _, s := range steps {
		answer, why = s.answer, "probe says "+s.name
		d.check(ctx, s.o, now)
		st := d.status()
		if d.onPrem() != s.want || st.OnPrem != s.want || len(flips) != s.flips {
			t.Fatalf("%s: onPrem %v (status %v), %d flips; want %v, %d", s.name, d.onPrem(), st.OnPrem, len(flips), s.want, s.flips)
		}
		if s.o != nil && st.OnPremReason != why || s.o == nil && st.OnPremReason != "" {
			t.Errorf("%s: reason %q", s.name, st.OnPremReason)
		}
		if !st.OnPremChecked.Equal(now) {
			t.Errorf("%s: checked %v", s.name, st.OnPremChecked)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	answer = true
	d.check(cancelled, dnsDetection, now)
	if d.onPrem() || len(flips) != 4 {
		t.Error("a check cut short by teardown changed the outcome")
	}
}

// TestOnPremRun: the loop checks at once, on recheck, and every interval.
func TestOnPremRun(t *testing.T) {
	var probes atomic.Int32
	d := newOnPremDetector(func(context.Context, *steering.OnPremDetection) (bool, string) {
		probes.Add(1)
		return false, ""
	}, zap.NewNop(), func(bool) {})
	o := *dnsDetection
	o.Interval = steering.Duration(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.run(ctx, func() *steering.OnPremDetection { return &o }) })
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, "the first check", func() bool { return probes.Load() == 1 })
	d.recheck()
	waitFor(t, "a recheck", func() bool { return probes.Load() == 2 })
	if got := onPremInterval(nil); got < time.Hour {
		t.Errorf("interval without detection = %v", got)
	}
	if got := onPremInterval(&steering.OnPremDetection{}); got != steering.DefaultOnPremInterval {
		t.Errorf("default interval = %v", got)
	}
}

// fakeResolver answers A questions from a map it can change; nil answers
// NXDOMAIN.
type fakeResolver struct {
	mu    sync.Mutex
	names map[string]string
	addr  netip.AddrPort
}

func startResolver(t *testing.T, names map[string]string) *fakeResolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeResolver{names: names, addr: netip.MustParseAddrPort(pc.LocalAddr().String())}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(r.serve)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return r
}

func (r *fakeResolver) set(name, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if addr == "" {
		delete(r.names, name)
	} else {
		r.names[name] = addr
	}
}

func (r *fakeResolver) serve(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	r.mu.Lock()
	a, ok := r.names[strings.TrimSuffix(q.Question[0].Name, ".")]
	r.mu.Unlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
	} else if q.Question[0].Qtype == dns.TypeA {
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A " + a)
		m.Answer = append(m.Answer, rr)
	}
	w.WriteMsg(m)
}

func TestOnPremDNSProbe(t *testing.T) {
	r := startResolver(t, map[string]string{"onprem.corp.test": "10.1.2.3", "other.corp.test": "10.9.9.9"})
	dead := netip.MustParseAddrPort("127.0.0.1:9") // discard: nobody answers
	tests := []struct {
		name  string
		ups   []netip.AddrPort
		probe steering.OnPremDNS
		want  bool
		why   string
	}{
		{"answered", []netip.AddrPort{r.addr}, *dnsDetection.DNS, true, "onprem.corp.test is 10.1.2.3"},
		{"after a dead resolver", []netip.AddrPort{dead, r.addr}, *dnsDetection.DNS, true, "onprem.corp.test is 10.1.2.3"},
		{"another address", []netip.AddrPort{r.addr}, steering.OnPremDNS{Name: "other.corp.test", Address: "10.1.2.3"}, false,
			"other.corp.test is [10.9.9.9], not 10.1.2.3"},
		{"NXDOMAIN", []netip.AddrPort{r.addr}, steering.OnPremDNS{Name: "nx.corp.test", Address: "10.1.2.3"}, false, "nx.corp.test is [], not"},
		{"no resolvers", nil, *dnsDetection.DNS, false, "onprem.corp.test: no resolvers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := netProber{upstreams: func() []netip.AddrPort { return tt.ups }, timeout: 300 * time.Millisecond}
			got, why := n.onPrem(context.Background(), &steering.OnPremDetection{DNS: &tt.probe})
			if got != tt.want || !strings.HasPrefix(why, tt.why) {
				t.Errorf("onPrem = %v, %q; want %v, %q…", got, why, tt.want, tt.why)
			}
		})
	}
}

func TestOnPremBeaconProbe(t *testing.T) {
	var redirected atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected.Store(true) }))
	defer target.Close()
	beacon := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer beacon.Close()
	sum := sha256.Sum256(beacon.Certificate().Raw)
	pin := hex.EncodeToString(sum[:])
	other := strings.Repeat("ab", 32)
	r := startResolver(t, map[string]string{"beacon.corp.test": "127.0.0.1"})
	port := beacon.Listener.Addr().(*net.TCPAddr).Port
	byName := "https://beacon.corp.test:" + strconv.Itoa(port) + "/"
	tests := []struct {
		name string
		b    steering.OnPremBeacon
		want bool
		why  string
	}{
		{"pinned", steering.OnPremBeacon{URL: beacon.URL, SHA256: pin}, true, "beacon " + beacon.URL + " (127.0.0.1) presented the pinned certificate"},
		{"pinned, by name", steering.OnPremBeacon{URL: byName, SHA256: strings.ToUpper(pin)}, true, "beacon " + byName + " (127.0.0.1) presented the pinned"},
		{"another certificate", steering.OnPremBeacon{URL: beacon.URL, SHA256: other}, false, "beacon " + beacon.URL + " (127.0.0.1) presented another certificate"},
		{"nothing there", steering.OnPremBeacon{URL: "https://127.0.0.1:9/", SHA256: pin}, false, "beacon https://127.0.0.1:9/ (127.0.0.1): "},
		{"unknown name", steering.OnPremBeacon{URL: "https://nx.corp.test/", SHA256: pin}, false, "beacon https://nx.corp.test/: the name has no address"},
	}
	n := netProber{upstreams: func() []netip.AddrPort { return []netip.AddrPort{r.addr} }, timeout: time.Second}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := n.onPrem(context.Background(), &steering.OnPremDetection{Beacon: &tt.b})
			if got != tt.want || !strings.HasPrefix(why, tt.why) {
				t.Errorf("onPrem = %v, %q; want %v, %q…", got, why, tt.want, tt.why)
			}
		})
	}
	if redirected.Load() {
		t.Error("the beacon's redirect was followed")
	}
}

// TestOnPremAgent: on an agent on fakes, coming on premises takes the app
// prefixes out of the routes and hands private names to the OS's resolvers;
// a network change after which the name no longer answers brings steering
// back.
func TestOnPremAgent(t *testing.T) {
	r := startResolver(t, map[string]string{"onprem.corp.test": "10.1.2.3"})
	mon := platformtest.NewNetMonitor()
	var router *platformtest.Router
	fa := newFakeAgent(t, "", func(c *Config) {
		c.NewNetMonitor = func([]string, *zap.Logger) (platform.NetMonitor, error) { return mon, nil }
		c.NewRouter = func(string, *zap.Logger) (platform.Router, error) {
			router = &platformtest.Router{}
			return router, nil
		}
		c.Log = zaptest.NewLogger(t)
	})
	fa.dns.SetOriginal(r.addr)
	fa.cfgs.Set(fakeConfig(fakeApps(), steering.ClientConfig{OnPremDetection: dnsDetection, FailMode: steering.FailClose}))
	// Fail-close: the tunnel (down here) does not decide whether private names are owned.
	fa.start(t)
	p := partsOf(t, fa.Agent)
	routes := func() int { cfg, _ := router.Current(); return len(cfg.Routes) }
	owned := func() bool { _, ok := dnsPolicy{p}.Lookup("web.corp.test"); return ok }

	st := waitStatus(t, fa.Agent, "on premises", func(st ctlapi.Status) bool { return st.Network.OnPrem })
	if !strings.Contains(st.Network.OnPremReason, "onprem.corp.test is 10.1.2.3") {
		t.Errorf("reason %q", st.Network.OnPremReason)
	}
	if n := routes(); n != 2 || owned() {
		t.Fatalf("on premises: %d routes (want the two stub ranges only), private name owned %v", n, owned())
	}

	r.set("onprem.corp.test", "")
	mon.Change()
	waitStatus(t, fa.Agent, "off premises", func(st ctlapi.Status) bool { return !st.Network.OnPrem })
	if n := routes(); n != 2+len(p.snap.Load().Prefixes()) || !owned() {
		t.Fatalf("off premises: %d routes, private name owned %v", n, owned())
	}
}
