package publisher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// zoneRR is what the test server answers for one name and type.
type zoneRR struct {
	addrs []string
	ttl   uint32
	rcode int // dns.RcodeSuccess unless set
	// soa adds an SOA with this TTL and MINIMUM to a negative answer (0: none).
	soaTTL, soaMin uint32
}

// testDNS is a miekg/dns server for the cache's tests: it answers from zone,
// counts the queries per name and type, and holds those of a name in hold
// until the channel is closed.
type testDNS struct {
	addr string
	mu   sync.Mutex
	zone map[rrKey]zoneRR
	n    map[rrKey]int
	hold map[string]chan struct{}
}

func newTestDNS(t *testing.T, zone map[rrKey]zoneRR) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testDNS{addr: pc.LocalAddr().String(), zone: zone, n: make(map[rrKey]int), hold: make(map[string]chan struct{})}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
	return s
}

func (s *testDNS) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	k := rrKey{dns.CanonicalName(q.Question[0].Name), q.Question[0].Qtype}
	s.mu.Lock()
	s.n[k]++
	z, ok := s.zone[k]
	hold := s.hold[k.name]
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	m := new(dns.Msg)
	m.SetReply(q)
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa(300, 3600))
	case z.rcode != dns.RcodeSuccess:
		m.Rcode = z.rcode
	case len(z.addrs) == 0 && z.soaMin > 0:
		m.Ns = append(m.Ns, soa(z.soaTTL, z.soaMin))
	}
	for _, a := range z.addrs {
		rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", k.name, z.ttl, dns.TypeToString[k.qtype], a))
		if err != nil {
			panic(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	w.WriteMsg(m)
}

func soa(ttl, minTTL uint32) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: "corp.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns: "ns.corp.test.", Mbox: "admin.corp.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: minTTL}
}

func (s *testDNS) queries(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[rrKey{dns.CanonicalName(name), qtype}]
}

// testClock is the cache's clock, moved by the test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(s *testDNS) (*resolveCache, *testClock) {
	clk := &testClock{t: time.Unix(1_000_000, 0)}
	c := newResolveCache(s.addr)
	c.now = clk.now
	return c, clk
}

func lookupCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestResolveCacheTTL: an answer is served from the cache for its TTL and
// asked again once it expires, each type on its own.
func TestResolveCacheTTL(t *testing.T) {
	s := newTestDNS(t, map[rrKey]zoneRR{
		{"web.corp.test.", dns.TypeA}:    {addrs: []string{"10.20.0.10"}, ttl: 60},
		{"web.corp.test.", dns.TypeAAAA}: {soaTTL: 300, soaMin: 10}, // NODATA, kept 10 s
	})
	c, clk := newTestCache(s)
	want := []netip.Addr{netip.MustParseAddr("10.20.0.10")}
	lookup := func(wantA, wantAAAA int) {
		t.Helper()
		got, err := c.lookup(lookupCtx(t), "Web.Corp.Test")
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("lookup = %v, %v; want %v", got, err, want)
		}
		if a, aaaa := s.queries("web.corp.test", dns.TypeA), s.queries("web.corp.test", dns.TypeAAAA); a != wantA || aaaa != wantAAAA {
			t.Fatalf("queries: A %d, AAAA %d; want %d, %d", a, aaaa, wantA, wantAAAA)
		}
	}
	lookup(1, 1)
	lookup(1, 1) // both cached
	clk.advance(9 * time.Second)
	lookup(1, 1)
	clk.advance(time.Second) // the NODATA's 10 s are over
	lookup(1, 2)
	clk.advance(49 * time.Second) // t=59: only the second NODATA has expired
	lookup(1, 3)
	clk.advance(time.Second) // t=60: the A's 60 s are over
	lookup(2, 3)
}

// TestResolveCacheNegative: negative answers are kept for their SOA's
// negative TTL, bounded, or briefly without an SOA, and are "no such host".
func TestResolveCacheNegative(t *testing.T) {
	tests := []struct {
		name string
		zone map[rrKey]zoneRR // for x.corp.test
		keep time.Duration
	}{
		// The test server's NXDOMAIN carries an SOA with MINIMUM 3600.
		{"NXDOMAIN, bounded", nil, maxNegativeTTL},
		{"NODATA for both, SOA TTL below MINIMUM", map[rrKey]zoneRR{
			{"x.corp.test.", dns.TypeA}:    {soaTTL: 7, soaMin: 20},
			{"x.corp.test.", dns.TypeAAAA}: {soaTTL: 7, soaMin: 20},
		}, 7 * time.Second},
		{"NODATA without SOA", map[rrKey]zoneRR{
			{"x.corp.test.", dns.TypeA}:    {},
			{"x.corp.test.", dns.TypeAAAA}: {},
		}, noSOANegativeTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestDNS(t, tt.zone)
			c, clk := newTestCache(s)
			lookup := func(wantQueries int) {
				t.Helper()
				_, err := c.lookup(lookupCtx(t), "x.corp.test.")
				var dnsErr *net.DNSError
				if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound || reason(err) != "no such host" {
					t.Fatalf("lookup error %v, want no such host", err)
				}
				if n := s.queries("x.corp.test.", dns.TypeA); n != wantQueries {
					t.Fatalf("%d A queries, want %d", n, wantQueries)
				}
			}
			lookup(1)
			clk.advance(tt.keep - time.Second)
			lookup(1)
			clk.advance(time.Second)
			lookup(2)
		})
	}
}

// TestResolveCacheCoalesces: lookups of a name while its query is in flight
// wait for that query instead of sending their own, and an answer with TTL 0
// is not kept.
func TestResolveCacheCoalesces(t *testing.T) {
	s := newTestDNS(t, map[rrKey]zoneRR{
		{"app.corp.test.", dns.TypeA}:    {addrs: []string{"10.20.0.10"}, ttl: 0},
		{"app.corp.test.", dns.TypeAAAA}: {addrs: []string{"fd00::10"}, ttl: 0},
	})
	release := make(chan struct{})
	s.mu.Lock()
	s.hold["app.corp.test."] = release
	s.mu.Unlock()
	c, _ := newTestCache(s)
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			got, err := c.lookup(lookupCtx(t), "app.corp.test")
			if err == nil && (len(got) != 2 || got[0] != netip.MustParseAddr("fd00::10")) {
				err = fmt.Errorf("got %v, want fd00::10 then 10.20.0.10", got)
			}
			errs <- err
		})
	}
	// Wait until every lookup but the leader waits on each type's flight.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		fa, fb := c.flights[rrKey{"app.corp.test.", dns.TypeA}], c.flights[rrKey{"app.corp.test.", dns.TypeAAAA}]
		ready := fa != nil && fb != nil && fa.waiters == n-1 && fb.waiters == n-1
		c.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lookups did not all wait on one query per type")
		}
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if a, aaaa := s.queries("app.corp.test", dns.TypeA), s.queries("app.corp.test", dns.TypeAAAA); a != 1 || aaaa != 1 {
		t.Fatalf("queries: A %d, AAAA %d; want one each", a, aaaa)
	}
	if _, err := c.lookup(lookupCtx(t), "app.corp.test"); err != nil {
		t.Fatal(err)
	}
	if n := s.queries("app.corp.test", dns.TypeA); n != 2 {
		t.Fatalf("%d A queries after a TTL 0 answer, want 2 (not cached)", n)
	}
}

// TestResolveCacheBounds: the cache holds at most c.max entries, dropping the
// expired ones first and then the one closest to expiring, and at most
// maxCachedAddrs addresses per answer.
func TestResolveCacheBounds(t *testing.T) {
	zone := map[rrKey]zoneRR{}
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("10.0.0.%d", i+1))
	}
	zone[rrKey{"many.corp.test.", dns.TypeA}] = zoneRR{addrs: many, ttl: 60}
	for i, ttl := range []uint32{100, 20, 300, 400, 500} {
		zone[rrKey{fmt.Sprintf("n%d.corp.test.", i), dns.TypeA}] = zoneRR{addrs: []string{"10.1.0.1"}, ttl: ttl}
	}
	s := newTestDNS(t, zone)
	c, clk := newTestCache(s)
	got, err := c.lookup(lookupCtx(t), "many.corp.test")
	if err != nil || len(got) != maxCachedAddrs {
		t.Fatalf("lookup = %d addresses, %v; want %d", len(got), err, maxCachedAddrs)
	}
	c.max = 4
	for i := range 5 {
		if _, err := c.lookup(lookupCtx(t), fmt.Sprintf("n%d.corp.test", i)); err != nil {
			t.Fatal(err)
		}
		if len(c.entries) > c.max {
			t.Fatalf("%d entries, want at most %d", len(c.entries), c.max)
		}
	}

	c.max = 3
	clear(c.entries)
	t0 := clk.now()
	store := func(name string, expires time.Duration) {
		c.mu.Lock()
		c.storeLocked(rrKey{name, dns.TypeA}, rrEntry{expires: t0.Add(expires)})
		c.mu.Unlock()
	}
	keys := func() []string {
		var names []string
		for k := range c.entries {
			names = append(names, k.name)
		}
		slices.Sort(names)
		return names
	}
	store("a", 10*time.Second)
	store("b", 20*time.Second)
	store("c", 30*time.Second)
	clk.advance(15 * time.Second)
	store("d", 60*time.Second) // a has expired: it goes
	if got := keys(); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Fatalf("entries %v, want b c d", got)
	}
	store("e", 60*time.Second) // none has: b, the closest to expiring, goes
	if got := keys(); !slices.Equal(got, []string{"c", "d", "e"}) {
		t.Fatalf("entries %v, want c d e", got)
	}
}

// TestResolveRefusals: the cache's errors become the refusals Go's resolver's
// gave: the same reason, and the same status through dialNet.
func TestResolveRefusals(t *testing.T) {
	s := newTestDNS(t, map[rrKey]zoneRR{
		{"refused.corp.test.", dns.TypeA}:     {rcode: dns.RcodeRefused},
		{"refused.corp.test.", dns.TypeAAAA}:  {rcode: dns.RcodeRefused},
		{"servfail.corp.test.", dns.TypeA}:    {rcode: dns.RcodeServerFailure},
		{"servfail.corp.test.", dns.TypeAAAA}: {rcode: dns.RcodeServerFailure},
		{"v4only.corp.test.", dns.TypeA}:      {addrs: []string{"127.0.0.1"}, ttl: 60},
		{"v4only.corp.test.", dns.TypeAAAA}:   {rcode: dns.RcodeRefused}, // dnsmasq's before --local
	})
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // a resolver that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	tests := []struct {
		name, host, resolver string
		status               int
		reason               string
	}{
		{"NXDOMAIN", "unknown.corp.test", s.addr, http.StatusBadGateway, "no such host"},
		{"REFUSED", "refused.corp.test", s.addr, http.StatusBadGateway, "server misbehaving"},
		{"SERVFAIL", "servfail.corp.test", s.addr, http.StatusBadGateway, "server misbehaving"},
		{"no answer", "web.corp.test", silent.LocalAddr().String(), http.StatusGatewayTimeout, "timed out"},
		{"A, AAAA refused", "v4only.corp.test", s.addr, http.StatusOK, ""},
		{"literal", "127.0.0.1", silent.LocalAddr().String(), http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(Config{Resolver: tt.resolver, DialTimeout: 500 * time.Millisecond})
			c, status, err := p.dialNet(context.Background(), "tcp", l7.Target{Host: tt.host, Port: port})
			if c != nil {
				c.Close()
			}
			want := ""
			if tt.reason != "" {
				want = "resolve " + tt.host + ": " + tt.reason
			}
			if status != tt.status || (err == nil) != (want == "") || (err != nil && err.Error() != want) {
				t.Fatalf("dialNet = %d, %v; want %d, %q", status, err, tt.status, want)
			}
			if tt.reason == "" || tt.reason == "timed out" {
				return
			}
			// Go's resolver, as the publisher used it before the cache.
			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, tt.resolver)
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, goErr := r.LookupNetIP(ctx, "ip", tt.host+"."); reason(goErr) != tt.reason {
				t.Errorf("Go's resolver's reason %q, the cache's %q", reason(goErr), tt.reason)
			}
		})
	}
}

// TestDialAddrsFallback: when the first family's addresses refuse, the other
// family's are tried without waiting for fallbackDelay, and the first
// family's error is the one reported when all fail.
func TestDialAddrsFallback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	p := New(Config{})
	ctx := lookupCtx(t)
	start := time.Now()
	c, err := p.dialAddrs(ctx, "tcp", []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, port)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if d := time.Since(start); d >= fallbackDelay {
		t.Errorf("connected after %v, want before the fallback delay", d)
	}
	ln.Close()
	_, err = p.dialAddrs(ctx, "tcp", []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, port)
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Addr.String() != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String() {
		t.Fatalf("error %v, want the IPv4 address's", err)
	}
}
