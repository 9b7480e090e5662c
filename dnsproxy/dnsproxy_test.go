package dnsproxy

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLocalAnswers(t *testing.T) {
	up := startUpstream(t, answerA)
	pol := newMapPolicy(30*time.Second,
		"wiki.corp.example", "100.64.0.1",
		"v6.corp.example", "fd7a:115c:a1e0::1",
		"full.corp.example", "",
		"dual.corp.example", "100.64.0.2,fd7a:7a61:6774::2")
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, Policy: pol, CacheSize: -1})

	tests := []struct {
		name     string
		qname    string
		qtype    uint16
		rcode    int
		answer   string // the answer's RDATA, "" for none
		local    bool   // answered without asking the upstream
		wantAuth bool
	}{
		{"A private", "wiki.corp.example.", dns.TypeA, dns.RcodeSuccess, "100.64.0.1", true, true},
		{"A private upper case", "WiKi.Corp.Example.", dns.TypeA, dns.RcodeSuccess, "100.64.0.1", true, true},
		{"ANY private", "wiki.corp.example.", dns.TypeANY, dns.RcodeSuccess, "100.64.0.1", true, true},
		{"AAAA private is NODATA", "wiki.corp.example.", dns.TypeAAAA, dns.RcodeSuccess, "", true, true},
		{"HTTPS private is NODATA", "wiki.corp.example.", dns.TypeHTTPS, dns.RcodeSuccess, "", true, true},
		{"SVCB private is NODATA", "wiki.corp.example.", dns.TypeSVCB, dns.RcodeSuccess, "", true, true},
		{"MX private is NODATA", "wiki.corp.example.", dns.TypeMX, dns.RcodeSuccess, "", true, true},
		{"AAAA of IPv6 stub", "v6.corp.example.", dns.TypeAAAA, dns.RcodeSuccess, "fd7a:115c:a1e0::1", true, true},
		{"A of IPv6 stub is NODATA", "v6.corp.example.", dns.TypeA, dns.RcodeSuccess, "", true, true},
		{"A of dual-stack stub", "dual.corp.example.", dns.TypeA, dns.RcodeSuccess, "100.64.0.2", true, true},
		{"AAAA of dual-stack stub", "dual.corp.example.", dns.TypeAAAA, dns.RcodeSuccess, "fd7a:7a61:6774::2", true, true},
		{"ANY of dual-stack stub", "dual.corp.example.", dns.TypeANY, dns.RcodeSuccess, "100.64.0.2", true, true},
		{"HTTPS of dual-stack stub is NODATA", "dual.corp.example.", dns.TypeHTTPS, dns.RcodeSuccess, "", true, true},
		{"PTR of dual-stack IPv6 stub", mustReverse(t, "fd7a:7a61:6774::2"), dns.TypePTR, dns.RcodeSuccess, "dual.corp.example.", true, true},
		{"private without address", "full.corp.example.", dns.TypeA, dns.RcodeServerFailure, "", true, false},
		{"PTR of stub", "1.0.64.100.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "wiki.corp.example.", true, true},
		{"PTR of IPv6 stub", mustReverse(t, "fd7a:115c:a1e0::1"), dns.TypePTR, dns.RcodeSuccess, "v6.corp.example.", true, true},
		{"PTR of other address forwarded", "9.0.64.100.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "", false, false},
		{"public A forwarded", "www.example.com.", dns.TypeA, dns.RcodeSuccess, "192.0.2.1", false, false},
		{"parent of private forwarded", "corp.example.", dns.TypeA, dns.RcodeSuccess, "192.0.2.1", false, false},
		{"DoH canary is NXDOMAIN", "use-application-dns.net.", dns.TypeA, dns.RcodeNameError, "", true, false},
		{"DoH canary AAAA upper case", "Use-Application-DNS.net.", dns.TypeAAAA, dns.RcodeNameError, "", true, false},
		{"below the canary forwarded", "x.use-application-dns.net.", dns.TypeA, dns.RcodeSuccess, "192.0.2.1", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				before := up.count()
				resp := query(t, network, addr, newQuery(tc.qname, tc.qtype))
				if resp.Rcode != tc.rcode {
					t.Fatalf("%s: rcode %s, want %s", network, rcodeName(resp.Rcode), rcodeName(tc.rcode))
				}
				if got := rdata(resp.Answer); got != tc.answer {
					t.Errorf("%s: answer %q, want %q", network, got, tc.answer)
				}
				if asked := up.count() > before; asked == tc.local {
					t.Errorf("%s: upstream asked = %v, want %v", network, asked, !tc.local)
				}
				if resp.Authoritative != tc.wantAuth {
					t.Errorf("%s: AA = %v, want %v", network, resp.Authoritative, tc.wantAuth)
				}
				if resp.Question[0].Name != tc.qname {
					t.Errorf("%s: question name %q, want the query's %q", network, resp.Question[0].Name, tc.qname)
				}
			}
		})
	}
}

// TestCanaryEveryClient: the DoH canary is NXDOMAIN without a policy and for
// a client that bypasses the agent too, since a browser's DoH would hide
// private names from the agent whichever process asks first.
func TestCanaryEveryClient(t *testing.T) {
	up := startUpstream(t, answerA)
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, CacheSize: -1,
		Bypass: func(netip.AddrPort) bool { return true }})
	for _, network := range []string{"udp", "tcp"} {
		m := newQuery("use-application-dns.net.", dns.TypeA)
		m.SetEdns0(1232, true)
		resp := query(t, network, addr, m)
		if resp.Rcode != dns.RcodeNameError || len(resp.Answer) != 0 || resp.IsEdns0() == nil {
			t.Errorf("%s: %s with %d answers (EDNS %v), want NXDOMAIN, no answer, EDNS echoed",
				network, rcodeName(resp.Rcode), len(resp.Answer), resp.IsEdns0() != nil)
		}
	}
	if n := up.count(); n != 0 {
		t.Errorf("the canary was forwarded %d times", n)
	}
}

func TestLocalAnswerTTLAndEDNS(t *testing.T) {
	pol := newMapPolicy(45*time.Second, "wiki.corp.example", "100.64.0.1")
	_, addr := startProxy(t, Config{Policy: pol})

	m := newQuery("wiki.corp.example.", dns.TypeA)
	m.SetEdns0(4096, true)
	resp := query(t, "udp", addr, m)
	if len(resp.Answer) != 1 || resp.Answer[0].Header().Ttl != 45 {
		t.Fatalf("answer %v, want one record with TTL 45", resp.Answer)
	}
	opt := resp.IsEdns0()
	if opt == nil || !opt.Do() || opt.Version() != 0 {
		t.Fatalf("OPT %v, want one echoing DO, version 0", opt)
	}

	m = newQuery("wiki.corp.example.", dns.TypeA)
	m.SetEdns0(4096, false)
	m.IsEdns0().SetVersion(1)
	resp = query(t, "udp", addr, m)
	if resp.Rcode != dns.RcodeBadVers || len(resp.Answer) != 0 {
		t.Fatalf("EDNS version 1: rcode %s answers %d, want BADVERS and none", rcodeName(resp.Rcode), len(resp.Answer))
	}
}

func TestSetPolicySwap(t *testing.T) {
	up := startUpstream(t, answerA)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, CacheSize: -1})
	ask := func() string { return rdata(query(t, "udp", addr, newQuery("app.corp.example.", dns.TypeA)).Answer) }
	if got := ask(); got != "192.0.2.1" {
		t.Fatalf("without policy: %q, want the upstream's", got)
	}
	s.SetPolicy(newMapPolicy(time.Minute, "app.corp.example", "100.64.0.7"))
	if got := ask(); got != "100.64.0.7" {
		t.Fatalf("after SetPolicy: %q, want the stub", got)
	}
	s.SetPolicy(nil)
	if got := ask(); got != "192.0.2.1" {
		t.Fatalf("after SetPolicy(nil): %q, want the upstream's", got)
	}
}

func TestMalformedQueries(t *testing.T) {
	_, addr := startProxy(t, Config{Policy: newMapPolicy(time.Minute, "a.corp.example", "100.64.0.1")})
	valid := newQuery("a.corp.example.", dns.TypeA)
	withQuestions := func(n int) []byte {
		m := valid.Copy()
		for range n - 1 {
			m.Question = append(m.Question, m.Question[0])
		}
		m.Question = m.Question[:n]
		b, _ := m.Pack()
		return b
	}
	twoOPT := valid.Copy()
	twoOPT.SetEdns0(1232, false)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	twoOPTWire, _ := twoOPT.Pack()
	update := valid.Copy()
	update.Opcode = dns.OpcodeUpdate
	updateWire, _ := update.Pack()
	truncatedQuestion, _ := valid.Pack()
	truncatedQuestion = truncatedQuestion[:len(truncatedQuestion)-3]

	tests := []struct {
		name  string
		wire  []byte
		rcode int
	}{
		{"no question", withQuestions(0), dns.RcodeFormatError},
		{"two questions", withQuestions(2), dns.RcodeFormatError},
		{"two OPT records", twoOPTWire, dns.RcodeFormatError},
		{"UPDATE opcode", updateWire, dns.RcodeNotImplemented},
		{"question cut short", truncatedQuestion, dns.RcodeFormatError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawExchange(t, addr, tc.wire)
			if resp.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", rcodeName(resp.Rcode), rcodeName(tc.rcode))
			}
		})
	}
	// Garbage too short for a header is dropped; the server still answers.
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{1, 2, 3})
	c.Close()
	if got := rdata(query(t, "udp", addr, valid).Answer); got != "100.64.0.1" {
		t.Fatalf("after garbage: %q", got)
	}
}

func rawExchange(t *testing.T, addr string, wire []byte) *dns.Msg {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestStartErrors(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.LocalAddr().String()

	// Find an address free for UDP and TCP to list first, and check it is
	// released on failure.
	freeUDP, freeTCP, err := bindPair(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := freeUDP.LocalAddr().String()
	freeUDP.Close()
	freeTCP.Close()

	s, err := New(Config{Listen: []string{freeAddr, busyAddr}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start()
	if err == nil {
		s.Close()
		t.Fatal("Start on a busy port succeeded")
	}
	if !strings.Contains(err.Error(), busyAddr) || !strings.Contains(err.Error(), "another DNS server") {
		t.Errorf("error %q does not name the address and the cause", err)
	}
	againUDP, againTCP, err := bindPair(netip.MustParseAddrPort(freeAddr))
	if err != nil {
		t.Errorf("first address left bound after failed Start: %v", err)
	} else {
		againUDP.Close()
		againTCP.Close()
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after failed Start: %v", err)
	}
	if err := s.Start(); err != ErrClosed {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no listen", Config{}},
		{"listen without port", Config{Listen: []string{"127.0.0.1"}}},
		{"listen name", Config{Listen: []string{"localhost:53"}}},
		{"upstream port 0", Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")}}},
		{"negative timeout", Config{Listen: []string{"127.0.0.1:0"}, Timeout: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0", "[::1]:0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	if len(s.Addrs()) != 2 {
		t.Fatalf("Addrs %v, want two", s.Addrs())
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func rdata(rrs []dns.RR) string {
	var out []string
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		case *dns.PTR:
			out = append(out, v.Ptr)
		default:
			out = append(out, rr.String())
		}
	}
	return strings.Join(out, ",")
}

func mustReverse(t *testing.T, ip string) string {
	t.Helper()
	r, err := dns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
