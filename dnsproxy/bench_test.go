package dnsproxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// The UDP benchmarks below send real queries over loopback, one at a time
// per client goroutine, so ns/op is the round trip as a client sees it.
// Compare BenchmarkUDPForwardMiss with BenchmarkUDPUpstreamDirect (the same
// upstream asked without the proxy) for the latency the proxy adds.

func benchProxy(b *testing.B, up netip.AddrPort, cacheSize int) string {
	b.Helper()
	cfg := Config{Listen: []string{"127.0.0.1:0"}, Policy: fuzzPolicy(), Log: zap.NewNop(), CacheSize: cacheSize}
	if up.IsValid() {
		cfg.Upstreams = []netip.AddrPort{up}
	}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s.Addrs()[0].String()
}

// benchUpstream is a bare miekg/dns server answering every A query from
// memory: the reference the proxy is compared with.
func benchUpstream(b *testing.B) netip.AddrPort {
	b.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	serveTest(b, nil, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		w.WriteMsg(answerA(r, "udp"))
	})})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpRoundTrips sends query to addr from parallel clients until b is done.
func udpRoundTrips(b *testing.B, addr string, query *dns.Msg) {
	wire, err := query.Pack()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 1500)
		for pb.Next() {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write(wire); err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUDPStub(b *testing.B) {
	udpRoundTrips(b, benchProxy(b, netip.AddrPort{}, 0), newQuery("wiki.corp.example.", dns.TypeA))
}

func BenchmarkUDPForwardCacheHit(b *testing.B) {
	udpRoundTrips(b, benchProxy(b, benchUpstream(b), 0), newQuery("www.example.com.", dns.TypeA))
}

func BenchmarkUDPForwardMiss(b *testing.B) {
	udpRoundTrips(b, benchProxy(b, benchUpstream(b), -1), newQuery("www.example.com.", dns.TypeA))
}

func BenchmarkUDPUpstreamDirect(b *testing.B) {
	udpRoundTrips(b, benchUpstream(b).String(), newQuery("www.example.com.", dns.TypeA))
}

// BenchmarkCachedAnswer measures answering a forwarded name from the cache on
// the UDP fast path, from query bytes to reply bytes.
func BenchmarkCachedAnswer(b *testing.B) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Log: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	req := newQuery("www.example.com.", dns.TypeA)
	cachePut(b, s.cache, req, answerA(req, "udp"), time.Now())
	q, _ := req.Pack()
	out := make([]byte, 0, 512)
	names := newNameCache()
	b.ReportAllocs()
	for b.Loop() {
		if r, _, _ := s.fastAnswer(q, out[:0], netip.AddrPort{}, names); r == nil {
			b.Fatal("not answered")
		}
	}
}

// BenchmarkCachePutFull stores answers for new names in a full cache whose
// entries are all fresh, as under a stream of unique names (the DNS soak's):
// every put evicts.
func BenchmarkCachePutFull(b *testing.B) {
	const names = 4 * defaultCacheSize
	keys, answers := make([]string, names), make([][]byte, names)
	for i := range names {
		q := newQuery(fmt.Sprintf("u%d.soak.example.", i), dns.TypeA)
		_, _, key := keyFor(b, q)
		a, err := answerA(q, "udp").Pack()
		if err != nil {
			b.Fatal(err)
		}
		keys[i], answers[i] = string(key), a
	}
	c := newCache(defaultCacheSize)
	now := time.Now()
	for i := range defaultCacheSize {
		c.put(keys[i], answers[i], nil, now)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.put(keys[i%names], answers[i%names], nil, now)
		i++
	}
}
