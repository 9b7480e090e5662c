package dnsproxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestForwardPassThrough checks that a forwarded answer reaches the client with
// its flags, rcode, EDNS0 options and DNSSEC records as the upstream sent them.
func TestForwardPassThrough(t *testing.T) {
	sentc := make(chan *dns.Msg, 1)
	up := startUpstream(t, func(req *dns.Msg, _ string) *dns.Msg {
		resp := new(dns.Msg)
		resp.SetRcode(req, dns.RcodeNameError)
		resp.AuthenticatedData = true
		resp.CheckingDisabled = req.CheckingDisabled
		resp.RecursionAvailable = true
		resp.Ns = []dns.RR{
			mustRR(t, "example. 300 IN SOA ns.example. host.example. 1 7200 3600 1209600 60"),
			mustRR(t, "example. 300 IN RRSIG SOA 13 1 300 20261201000000 20261101000000 1234 example. AAAA"),
		}
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(1232)
		opt.SetDo(req.IsEdns0().Do())
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNSECMissing, ExtraText: "test"})
		resp.Extra = append(resp.Extra, opt)
		sentc <- resp.Copy()
		return resp
	})
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, CacheSize: -1})

	m := newQuery("nx.example.", dns.TypeA)
	m.CheckingDisabled = true
	m.SetEdns0(1232, true)
	m.Id = 4242
	resp := query(t, "udp", addr, m)

	sent := <-sentc
	got := up.query(0)
	if got.Id == m.Id {
		t.Errorf("upstream saw the client's ID %d; want a fresh one", m.Id)
	}
	if !got.CheckingDisabled || !got.IsEdns0().Do() {
		t.Errorf("upstream query lost CD or DO: %v", got)
	}
	sent.Id = m.Id
	if resp.String() != sent.String() {
		t.Errorf("client got\n%v\nupstream sent\n%v", resp, sent)
	}
}

func TestTruncatedRetriedOverTCP(t *testing.T) {
	big := func(req *dns.Msg, network string) *dns.Msg {
		resp := new(dns.Msg)
		resp.SetReply(req)
		if network == "udp" {
			resp.Truncated = true
			return resp
		}
		for i := range 60 {
			resp.Answer = append(resp.Answer, mustRR(t, fmt.Sprintf("%s 60 IN A 198.51.100.%d", req.Question[0].Name, i)))
		}
		return resp
	}
	up := startUpstream(t, big)
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, CacheSize: -1})

	tests := []struct {
		name      string
		network   string
		edns      uint16 // 0: no EDNS
		answers   int
		truncated bool
	}{
		{"tcp client gets all", "tcp", 0, 60, false},
		{"udp client with large buffer gets all", "udp", 4096, 60, false},
		{"udp client without EDNS is told to use TCP", "udp", 0, 60, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newQuery("many.example.", dns.TypeA)
			if tc.edns != 0 {
				m.SetEdns0(tc.edns, false)
			}
			resp := query(t, tc.network, addr, m)
			// A truncated answer carries what fits in 512 bytes.
			if full := len(resp.Answer) == tc.answers; full == tc.truncated {
				t.Errorf("%d answers of %d, truncated %v", len(resp.Answer), tc.answers, tc.truncated)
			}
			if resp.Truncated != tc.truncated {
				t.Errorf("TC = %v, want %v", resp.Truncated, tc.truncated)
			}
		})
	}
	// Every UDP attempt at the upstream was followed by a TCP one.
	nets := up.transports()
	for i, n := range nets {
		if n == "udp" && (i+1 == len(nets) || nets[i+1] != "tcp") {
			t.Errorf("upstream transports %v: a truncated UDP answer was not retried over TCP", nets)
			break
		}
	}
}

func TestFailover(t *testing.T) {
	servfail := startUpstream(t, func(req *dns.Msg, _ string) *dns.Msg {
		r := new(dns.Msg)
		return r.SetRcode(req, dns.RcodeServerFailure)
	})
	silent := startUpstream(t, func(*dns.Msg, string) *dns.Msg { return nil })
	good := startUpstream(t, answerA)
	closed := closedPort(t)

	tests := []struct {
		name  string
		ups   []netip.AddrPort
		rcode int
		ip    string
	}{
		{"first good", []netip.AddrPort{good.addr, silent.addr}, dns.RcodeSuccess, "192.0.2.1"},
		{"after silent", []netip.AddrPort{silent.addr, good.addr}, dns.RcodeSuccess, "192.0.2.1"},
		{"after SERVFAIL", []netip.AddrPort{servfail.addr, good.addr}, dns.RcodeSuccess, "192.0.2.1"},
		{"after closed port", []netip.AddrPort{closed, good.addr}, dns.RcodeSuccess, "192.0.2.1"},
		{"all fail", []netip.AddrPort{closed, silent.addr}, dns.RcodeServerFailure, ""},
		{"only SERVFAIL passes it through", []netip.AddrPort{servfail.addr}, dns.RcodeServerFailure, ""},
		{"none configured", nil, dns.RcodeServerFailure, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, addr := startProxy(t, Config{Upstreams: tc.ups, Timeout: 200 * time.Millisecond, CacheSize: -1})
			resp := query(t, "udp", addr, newQuery("www.example.com.", dns.TypeA))
			if resp.Rcode != tc.rcode || rdata(resp.Answer) != tc.ip {
				t.Fatalf("rcode %s answer %q, want %s %q", rcodeName(resp.Rcode), rdata(resp.Answer), rcodeName(tc.rcode), tc.ip)
			}
			if tc.rcode == dns.RcodeSuccess && s.Stats().Forwarded != 1 {
				t.Errorf("stats %+v, want one forwarded", s.Stats())
			}
		})
	}
}

// TestDeadUpstreamTriedLast checks that an upstream that timed out is not
// asked first again (which would add a timeout to every query), but is still
// asked when the others fail.
func TestDeadUpstreamTriedLast(t *testing.T) {
	silent := startUpstream(t, func(*dns.Msg, string) *dns.Msg { return nil })
	good := startUpstream(t, answerA)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{silent.addr, good.addr}, Timeout: 100 * time.Millisecond, CacheSize: -1})
	for i := range 3 {
		resp := query(t, "udp", addr, newQuery(fmt.Sprintf("n%d.example.", i), dns.TypeA))
		if rdata(resp.Answer) != "192.0.2.1" {
			t.Fatalf("query %d: %v", i, resp)
		}
	}
	if silent.count() != 1 || good.count() != 3 {
		t.Fatalf("silent asked %d times, good %d; want 1 and 3", silent.count(), good.count())
	}
	// When the healthy one fails too, the one marked down is still tried.
	s.SetUpstreams([]netip.AddrPort{good.addr, silent.addr})
	s.upstreams.Load().markDown(0, time.Now()) // good is "down" but answers
	query(t, "udp", addr, newQuery("again.example.", dns.TypeA))
	if silent.count() != 2 || good.count() != 4 {
		t.Fatalf("silent asked %d times, good %d; want 2 and 4", silent.count(), good.count())
	}
}

// TestSetUpstreams checks that new upstreams take effect for the next query.
func TestSetUpstreams(t *testing.T) {
	a := startUpstream(t, answerA)
	b := startUpstream(t, answerA)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{a.addr}, CacheSize: -1})
	query(t, "udp", addr, newQuery("x.example.", dns.TypeA))
	s.SetUpstreams([]netip.AddrPort{b.addr, {}})
	query(t, "udp", addr, newQuery("x.example.", dns.TypeA))
	if a.count() != 1 || b.count() != 1 {
		t.Fatalf("upstream queries a=%d b=%d, want 1 and 1", a.count(), b.count())
	}
}

// TestSaturation fills MaxInFlight with a query the upstream holds, and checks
// that the next forwarded query is refused with SERVFAIL at once while local
// answers still work.
func TestSaturation(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := startUpstream(t, func(req *dns.Msg, _ string) *dns.Msg {
		if req.Question[0].Name == "slow.example." {
			arrived <- struct{}{}
			<-release
		}
		return answerA(req, "")
	})
	pol := newMapPolicy(time.Minute, "wiki.corp.example", "100.64.0.1")
	core, logs := observer.New(zap.WarnLevel)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, Policy: pol, MaxInFlight: 1, Timeout: 10 * time.Second, CacheSize: -1, Log: zap.New(core)})

	slowDone := make(chan *dns.Msg)
	go func() {
		c := &dns.Client{Timeout: 10 * time.Second}
		r, _, _ := c.Exchange(newQuery("slow.example.", dns.TypeA), addr)
		slowDone <- r
	}()
	<-arrived
	if resp := query(t, "udp", addr, newQuery("other.example.", dns.TypeA)); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("saturated: rcode %s, want SERVFAIL", rcodeName(resp.Rcode))
	}
	if got := rdata(query(t, "udp", addr, newQuery("wiki.corp.example.", dns.TypeA)).Answer); got != "100.64.0.1" {
		t.Errorf("local answer while saturated: %q", got)
	}
	close(release)
	if r := <-slowDone; r == nil || rdata(r.Answer) != "192.0.2.1" {
		t.Errorf("slow query: %v", r)
	}
	if st := s.Stats(); st.Saturated != 1 {
		t.Errorf("stats %+v, want Saturated 1", st)
	}
	if n := logs.FilterMessageSnippet("MaxInFlight").Len(); n != 1 {
		t.Errorf("%d warnings of MaxInFlight reached, want 1; logged: %v", n, logs.All())
	}
}

// TestCloseCancelsUpstreamWait checks that Close does not wait out the
// upstream timeout of a query in flight.
func TestCloseCancelsUpstreamWait(t *testing.T) {
	arrived := make(chan struct{}, 1)
	up := startUpstream(t, func(*dns.Msg, string) *dns.Msg { arrived <- struct{}{}; return nil })
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []netip.AddrPort{up.addr}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wire, _ := newQuery("hang.example.", dns.TypeA).Pack()
	c.Write(wire)
	<-arrived
	if err := s.Close(); err != nil { // would hang for an hour if not cancelled
		t.Fatal(err)
	}
}

func TestCacheServesForwardedAnswers(t *testing.T) {
	up := startUpstream(t, answerA)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}})
	for range 3 {
		if got := rdata(query(t, "udp", addr, newQuery("cached.example.", dns.TypeA)).Answer); got != "192.0.2.1" {
			t.Fatalf("answer %q", got)
		}
	}
	// A different DO bit is a different entry.
	m := newQuery("cached.example.", dns.TypeA)
	m.SetEdns0(1232, true)
	query(t, "tcp", addr, m)
	if up.count() != 2 {
		t.Fatalf("upstream asked %d times, want 2", up.count())
	}
	if st := s.Stats(); st.CacheHits != 2 || st.Forwarded != 2 {
		t.Fatalf("stats %+v, want 2 hits 2 forwarded", st)
	}
}

func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return a
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestUpstreamIsSelfIgnored(t *testing.T) {
	free := closedPort(t)
	s, err := New(Config{Listen: []string{free.String()}, Upstreams: []netip.AddrPort{free}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := len(s.upstreams.Load().addrs); n != 0 {
		t.Fatalf("%d upstreams, want the proxy's own address dropped", n)
	}
}

// TestSpoofedAnswersIgnored has an upstream send, before the real answer, one
// with another ID, one for another name and one that is not a response: the
// proxy must skip them and pass on only the real one.
func TestSpoofedAnswersIgnored(t *testing.T) {
	up := serveUDP(t, func(pc *net.UDPConn) {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			if req.Unpack(buf[:n]) != nil {
				continue
			}
			send := func(m *dns.Msg) {
				b, _ := m.Pack()
				pc.WriteToUDPAddrPort(b, from)
			}
			wrongID := answerA(req, "udp")
			wrongID.Id++
			wrongID.Answer[0].(*dns.A).A = net.IPv4(6, 6, 6, 1)
			send(wrongID)
			wrongName := answerA(newQuery("evil.example.", dns.TypeA), "udp")
			wrongName.Id = req.Id
			wrongName.Answer[0].(*dns.A).A = net.IPv4(6, 6, 6, 2)
			send(wrongName)
			notResponse := answerA(req, "udp")
			notResponse.Response = false
			notResponse.Answer[0].(*dns.A).A = net.IPv4(6, 6, 6, 3)
			send(notResponse)
			send(answerA(req, "udp"))
		}
	})
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up}, CacheSize: -1})
	for _, network := range []string{"udp", "tcp"} {
		if got := rdata(query(t, network, addr, newQuery("www.example.com.", dns.TypeA)).Answer); got != "192.0.2.1" {
			t.Errorf("%s: answer %q, want the real one", network, got)
		}
	}
}
