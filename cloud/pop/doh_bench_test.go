package pop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// BenchmarkResolveDNS measures one A query answered by a loopback DNS server:
// "udp" is a direct exchange with it (a fresh UDP socket per query, as the
// publisher's own),
// "doh" the same query through client → PoP → publisher → server, one at a time,
// and "doh-parallel" many at once on the one tunnel connection (GOMAXPROCS×4
// queries in flight). ns/op of "doh" minus "udp" is what the tunnel adds per query.
//
//	go test -run '^$' -bench ResolveDNS -benchtime 2s ./cloud/pop/
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
			answer, err := exchangeUDP(server, query)
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

// exchangeUDP sends query to server from a fresh UDP socket and reads one answer.
func exchangeUDP(server string, query []byte) ([]byte, error) {
	c, err := net.Dial("udp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, l7.MaxDNSMessage)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
