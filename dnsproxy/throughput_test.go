package dnsproxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The throughput benchmarks drive the real UDP loop the way dnsperf does:
// a few clients, each with its own socket and a window of queries
// outstanding, sending a new query as each answer comes back. They report
// queries/s (answers received per second of wall time). The clients run on
// the same machine as the proxy and take their share of its CPUs, so the
// figure is for comparing changes to the proxy, not an absolute rate.

const (
	tputClients = 4
	tputWindow  = 32
)

func BenchmarkUDPThroughputStub(b *testing.B) {
	udpThroughput(b, benchProxy(b, netip.AddrPort{}, 0), []*dns.Msg{
		newQuery("wiki.corp.example.", dns.TypeA), newQuery("x_y-1.corp.example.", dns.TypeA),
	})
}

func BenchmarkUDPThroughputCacheHit(b *testing.B) {
	addr := benchProxy(b, benchUpstream(b), 0)
	q := newQuery("www.example.com.", dns.TypeA)
	udpExchange(b, addr, q) // fill the cache
	udpThroughput(b, addr, []*dns.Msg{q})
}

// udpExchange sends one query and waits for its answer.
func udpExchange(b *testing.B, addr string, q *dns.Msg) {
	b.Helper()
	c := &dns.Client{Timeout: 2 * time.Second}
	if _, _, err := c.Exchange(q, addr); err != nil {
		b.Fatal(err)
	}
}

func udpThroughput(b *testing.B, addr string, queries []*dns.Msg) {
	wires := make([][]byte, len(queries))
	for i, q := range queries {
		w, err := q.Pack()
		if err != nil {
			b.Fatal(err)
		}
		wires[i] = w
	}
	conns := make([]*net.UDPConn, tputClients)
	for i := range conns {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c.(*net.UDPConn)
	}
	var lost atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i, c := range conns {
		n := b.N / tputClients
		if i < b.N%tputClients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := windowedClient(c, wires, n)
			lost.Add(int64(l))
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "queries/s")
	b.ReportMetric(float64(lost.Load()), "lost")
}

// windowedClient gets n answers on c, keeping up to tputWindow queries
// outstanding. A query whose answer does not come within a short time is
// counted lost and replaced (loopback drops only when a socket overflows).
func windowedClient(c *net.UDPConn, wires [][]byte, n int) (lost int, err error) {
	buf := make([]byte, 1500)
	sent, got, outstanding := 0, 0, 0
	send := func() error {
		for outstanding < tputWindow && sent < n {
			if _, err := c.Write(wires[sent%len(wires)]); err != nil {
				return err
			}
			sent++
			outstanding++
		}
		return nil
	}
	for got < n {
		if err := send(); err != nil {
			return lost, err
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return lost, err
			}
			// Every outstanding query is given up: send as many again.
			lost += outstanding
			got += outstanding
			outstanding = 0
			continue
		}
		got++
		outstanding--
	}
	return lost, nil
}
