package dnsproxy

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakePublisher is an Upstream answering A queries with 10.1.2.3.
type fakePublisher struct {
	fail  atomic.Bool
	calls atomic.Int32
	badID atomic.Bool
}

func (f *fakePublisher) Exchange(ctx context.Context, query []byte) ([]byte, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, errors.New("tunnel down")
	}
	req := new(dns.Msg)
	if err := req.Unpack(query); err != nil {
		return nil, err
	}
	if req.Id != 0 {
		f.badID.Store(true)
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if q := req.Question[0]; q.Qtype == dns.TypeA {
		resp.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   netip.MustParseAddr("10.1.2.3").AsSlice(),
		}}
	}
	return resp.Pack()
}

func TestPublisherDNS(t *testing.T) {
	up := startUpstream(t, answerA)
	pub := &fakePublisher{}
	pol := newMapPolicy(time.Minute, "wiki.corp.example", "100.64.0.1")
	pol.names["db.corp.example"] = Answer{Upstream: pub}
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, Policy: pol})

	for _, network := range []string{"udp", "tcp"} {
		for range 2 { // not cached: asked each time
			resp := query(t, network, addr, newQuery("DB.corp.example.", dns.TypeA))
			if rdata(resp.Answer) != "10.1.2.3" || resp.Question[0].Name != "DB.corp.example." {
				t.Fatalf("%s: %v", network, resp)
			}
		}
		if resp := query(t, network, addr, newQuery("db.corp.example.", dns.TypeAAAA)); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 {
			t.Fatalf("%s AAAA: %v", network, resp)
		}
	}
	if n := pub.calls.Load(); n != 6 {
		t.Errorf("publisher asked %d times, want 6", n)
	}
	if pub.badID.Load() {
		t.Error("publisher query did not carry ID 0")
	}
	if up.count() != 0 {
		t.Errorf("OS upstream asked %d times for a publisher-DNS name", up.count())
	}
	pub.fail.Store(true)
	if resp := query(t, "udp", addr, newQuery("db.corp.example.", dns.TypeA)); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("publisher failing: rcode %s, want SERVFAIL", rcodeName(resp.Rcode))
	}
	if st := s.Stats(); st.Delegated != 6 || st.Forwarded != 0 {
		t.Errorf("stats %+v, want 6 delegated, none forwarded", st)
	}
}

func TestBypass(t *testing.T) {
	up := startUpstream(t, answerA)
	var (
		bypass  atomic.Bool
		mu      sync.Mutex
		clients []netip.AddrPort
	)
	pol := newMapPolicy(time.Minute, "wiki.corp.example", "100.64.0.1")
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, Policy: pol, CacheSize: -1,
		Bypass: func(c netip.AddrPort) bool {
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
			return bypass.Load()
		}})
	tests := []struct {
		bypass bool
		want   string
	}{{false, "100.64.0.1"}, {true, "192.0.2.1"}}
	for _, tc := range tests {
		bypass.Store(tc.bypass)
		for _, network := range []string{"udp", "tcp"} {
			m := newQuery("wiki.corp.example.", dns.TypeA)
			if got := rdata(query(t, network, addr, m).Answer); got != tc.want {
				t.Errorf("bypass %v %s: %q, want %q", tc.bypass, network, got, tc.want)
			}
		}
	}
	query(t, "udp", addr, newQuery("public.example.", dns.TypeA)) // not asked for public names
	mu.Lock()
	defer mu.Unlock()
	if len(clients) != 4 {
		t.Fatalf("Bypass called %d times, want 4 (private names only)", len(clients))
	}
	for _, c := range clients {
		if c.Addr() != netip.MustParseAddr("127.0.0.1") || c.Port() == 0 {
			t.Errorf("Bypass got client %v", c)
		}
	}
}
