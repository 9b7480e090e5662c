package dnsproxy

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func TestLocalResolver(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.53":       true,
		"::1":              true,
		"10.1.2.3":         true,
		"172.16.0.1":       true,
		"192.168.1.1":      true,
		"169.254.0.1":      true,
		"fe80::1":          true,
		"fd00::53":         true,
		"::ffff:10.0.0.1":  true,
		"8.8.8.8":          false,
		"1.1.1.1":          false,
		"100.64.0.1":       false, // carrier NAT, and the agent's own stubs
		"100.100.100.100":  false,
		"2001:4860::8888":  false,
		"192.0.2.1":        false,
		"::ffff:8.8.4.4":   false,
		"172.32.0.1":       false,
		"2606:4700::1111":  false,
		"fec0::1":          false, // deprecated site-local
		"224.0.0.251":      false,
		"0.0.0.0":          false,
		"::":               false,
		"255.255.255.255":  false,
		"192.168.255.255":  true,
		"172.31.255.255":   true,
		"10.255.255.255":   true,
		"127.255.255.254":  true,
		"169.254.255.255":  true,
		"fdff:ffff::1":     true,
		"febf:ffff::1":     true,
		"fc00::1":          true,
		"100.127.255.255":  false,
		"100.63.255.255":   false,
		"9.255.255.255":    false,
		"11.0.0.0":         false,
		"192.167.255.255":  false,
		"192.169.0.0":      false,
		"2002:c0a8:0101::": false, // 6to4 of 192.168.1.1 is still routed publicly
	} {
		if got := LocalResolver(netip.MustParseAddr(addr)); got != want {
			t.Errorf("LocalResolver(%s) = %v, want %v", addr, got, want)
		}
	}
}

// localPolicy owns wiki.corp.example with fail mode "local".
type localPolicy struct{ mapPolicy }

func newLocalPolicy() *localPolicy {
	p := &localPolicy{*newMapPolicy(0)}
	p.names["wiki.corp.example"] = Answer{Local: true}
	return p
}

// nowhere is an upstream off the local network (TEST-NET-1) where nothing
// answers: a query sent there would time out and count as an upstream error.
var nowhere = netip.MustParseAddrPort("192.0.2.1:53")

func TestLocalAnswerSkipsOtherResolvers(t *testing.T) {
	up := startUpstream(t, answerA)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{nowhere, up.addr}, Policy: newLocalPolicy()})
	for _, network := range []string{"udp", "tcp"} {
		r := query(t, network, addr, newQuery("Wiki.Corp.Example.", dns.TypeA))
		if r.Rcode != dns.RcodeSuccess || rdata(r.Answer) != "192.0.2.1" {
			t.Fatalf("%s: %s %v, want the local upstream's answer", network, rcodeName(r.Rcode), r.Answer)
		}
	}
	if st := s.Stats(); st.UpstreamErrors != 0 || st.Local != 0 {
		t.Fatalf("stats %+v: the resolver off the local network was asked, or the agent answered itself", st)
	}
	if up.count() != 1 {
		t.Fatalf("local upstream asked %d times, want 1 (then the cache)", up.count())
	}
}

func TestLocalAnswerWithoutLocalResolverFails(t *testing.T) {
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{nowhere}, Policy: newLocalPolicy()})
	r := query(t, "udp", addr, newQuery("wiki.corp.example.", dns.TypeA))
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", rcodeName(r.Rcode))
	}
	if st := s.Stats(); st.UpstreamErrors != 0 || st.ServFail != 1 {
		t.Fatalf("stats %+v: want no upstream asked and one SERVFAIL", st)
	}
}

// An answer cached from any upstream must not answer a query kept to the
// local network's, nor the reverse: they may differ (split horizon) and the
// first may come from a public resolver.
func TestLocalAnswersCachedApart(t *testing.T) {
	up := startUpstream(t, answerA)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}})
	ask := func() {
		t.Helper()
		if r := query(t, "udp", addr, newQuery("wiki.corp.example.", dns.TypeA)); rdata(r.Answer) != "192.0.2.1" {
			t.Fatalf("answer %v", r.Answer)
		}
	}
	ask() // not owned: from any upstream, cached
	s.SetPolicy(newLocalPolicy())
	ask() // local only: not that cache entry
	ask() // its own entry
	s.SetPolicy(nil)
	ask() // the first entry again
	if up.count() != 2 {
		t.Fatalf("upstream asked %d times, want 2", up.count())
	}
	if st := s.Stats(); st.CacheHits != 2 {
		t.Fatalf("stats %+v, want 2 cache hits", st)
	}
}
