package dnsproxy

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mapPolicy is a Policy over two maps.
type mapPolicy struct {
	names map[string]Answer
	addrs map[netip.Addr]string
}

func newMapPolicy(ttl time.Duration, pairs ...string) *mapPolicy {
	p := &mapPolicy{names: map[string]Answer{}, addrs: map[netip.Addr]string{}}
	for i := 0; i+1 < len(pairs); i += 2 {
		// "a" or "a,a6": the stub, and the IPv6 stub.
		var a, a6 netip.Addr
		s, s6, _ := strings.Cut(pairs[i+1], ",")
		if s != "" {
			a = netip.MustParseAddr(s)
		}
		if s6 != "" {
			a6 = netip.MustParseAddr(s6)
		}
		p.names[pairs[i]] = Answer{Addr: a, Addr6: a6, TTL: ttl}
		for _, x := range []netip.Addr{a, a6} {
			if x.IsValid() {
				p.addrs[x] = pairs[i]
			}
		}
	}
	return p
}

func (p *mapPolicy) Lookup(name string) (Answer, bool) { a, ok := p.names[name]; return a, ok }
func (p *mapPolicy) Reverse(a netip.Addr) (string, bool) {
	n, ok := p.addrs[a]
	return n, ok
}

// upstream is a real miekg/dns server on 127.0.0.1 (UDP and TCP on one port)
// whose answers a test scripts.
type upstream struct {
	addr    netip.AddrPort
	mu      sync.Mutex
	queries []*dns.Msg // as received
	nets    []string   // "udp" or "tcp", per query
}

// startUpstream serves handle on a random port until the test ends. handle
// gets the query and the transport ("udp"/"tcp") and returns the reply, or
// nil to not answer.
func startUpstream(t *testing.T, handle func(req *dns.Msg, network string) *dns.Msg) *upstream {
	t.Helper()
	pc, ln, err := bindPair(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		network := w.LocalAddr().Network()
		u.mu.Lock()
		u.queries = append(u.queries, req.Copy())
		u.nets = append(u.nets, network)
		u.mu.Unlock()
		if resp := handle(req, network); resp != nil {
			w.WriteMsg(resp)
		}
	})
	serveTest(t, nil, &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: ln, Handler: h})
	return u
}

// serveUDP runs serve on a UDP socket bound to a loopback port until the
// test ends, when the socket is closed and serve, whose reads then fail,
// must return.
func serveUDP(t *testing.T, serve func(pc *net.UDPConn)) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() { defer close(done); serve(pc) }()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// serveTest runs miekg/dns servers, with their reads decorated by decorate if
// it is not nil, until the test ends.
func serveTest(tb testing.TB, decorate dns.DecorateReader, servers ...*dns.Server) {
	tb.Helper()
	for _, srv := range servers {
		srv.DecorateReader = decorate
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); srv.ActivateAndServe() }()
		<-started
		tb.Cleanup(func() { srv.Shutdown(); <-done })
	}
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.queries)
}

func (u *upstream) query(i int) *dns.Msg {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.queries[i]
}

func (u *upstream) transports() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.nets...)
}

// answerA replies to every query with an A record 192.0.2.1, TTL 300.
func answerA(req *dns.Msg, _ string) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	q := req.Question[0]
	if q.Qtype == dns.TypeA {
		resp.Answer = append(resp.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
			A:   net.IPv4(192, 0, 2, 1),
		})
	}
	return resp
}

// startProxy starts a proxy on 127.0.0.1 with cfg's unset fields defaulted
// for tests, and closes it when the test ends.
func startProxy(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.Log == nil {
		cfg.Log = zaptest.NewLogger(t)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, s.Addrs()[0].String()
}

// query asks addr over network ("udp"/"tcp") and fails the test on a transport
// error.
func query(t *testing.T, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s %s: %v", network, m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], err)
	}
	return resp
}

func newQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "rcode?"
}

func answersString(rrs []dns.RR) string {
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString(rr.String())
		b.WriteString("\n")
	}
	return b.String()
}
