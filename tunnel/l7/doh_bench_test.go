package l7

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkResolveDNS measures one A query answered by a loopback DNS server:
// "udp" is the publisher's own exchange with it (a fresh UDP socket per query),
// "doh" the same query through client → PoP → publisher → server, one at a time,
// and "doh-parallel" many at once on the one tunnel connection (GOMAXPROCS×4
// queries in flight). ns/op of "doh" minus "udp" is what the tunnel adds per query.
//
//	go test -run '^$' -bench ResolveDNS -benchtime 2s ./tunnel/l7/
func BenchmarkResolveDNS(b *testing.B) {
	server := startDNS(b, map[string]string{"echo.corp.test.": "127.0.0.1"})
	query := packQuery(b, "echo.corp.test.", dns.TypeA, 0)
	check := func(b *testing.B, answer []byte, err error) {
		if err != nil {
			b.Fatal(err)
		}
		if len(answer) <= len(query) || answer[3]&0x0f != dns.RcodeSuccess {
			b.Fatalf("answer %x is not a successful answer", answer)
		}
	}
	b.Run("udp", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			answer, err := exchangeDNS(context.Background(), server, query)
			check(b, answer, err)
		}
	})
	l := newLab(b, labOptions{dnsServer: server})
	b.Run("doh", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			answer, err := l.client.ResolveDNS(context.Background(), appEcho, query)
			check(b, answer, err)
		}
	})
	b.Run("doh-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				answer, err := l.client.ResolveDNS(context.Background(), appEcho, query)
				check(b, answer, err)
			}
		})
	})
}
