// Command dnslat measures the latency of DNS servers side by side, for
// scripts/bench-dns.sh: it sends queries for unique random names (or one
// fixed name) to each server in turn at a fixed total rate, so that every
// server is measured over the same seconds, and prints per server the
// answered count and the p50, p90 and p99 latency in microseconds.
//
// Measuring the servers one after the other, as dnsperf runs do, puts each
// in its own few seconds of a shared machine's noise: on a 2-core VM a
// server's own p99 moved between 210 and 2,286 µs from one run to the next,
// which hides any difference of 100 µs between two servers. Interleaved,
// the pauses of the machine fall on all of them alike.
//
// Usage:
//
//	dnslat -qps 3000 -n 10000 -name '*.bench.public.test' agent=10.0.0.1:53 direct=10.10.0.1:53
//
// A '*' in -name is replaced by a random label per query. Each server gets n
// queries; an unanswered query (after -timeout) counts as lost and is left
// out of the percentiles.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

func main() {
	qps := flag.Int("qps", 3000, "total queries per second, across all servers")
	n := flag.Int("n", 10000, "queries per server")
	name := flag.String("name", "*.bench.public.test", "query name; '*' becomes a random label per query")
	timeout := flag.Duration("timeout", 2*time.Second, "how long to wait for an answer")
	flag.Parse()
	if flag.NArg() == 0 || *qps <= 0 || *n <= 0 || *n > 60000 {
		fmt.Fprintln(os.Stderr, "usage: dnslat [-qps N] [-n N≤60000] [-name NAME] label=host:port...")
		os.Exit(2)
	}
	var servers []*server
	for _, arg := range flag.Args() {
		label, addr, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "dnslat: %q: want label=host:port\n", arg)
			os.Exit(2)
		}
		s, err := dial(label, addr, *n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dnslat:", err)
			os.Exit(1)
		}
		servers = append(servers, s)
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.receive(*timeout) }()
	}
	every := time.Second / time.Duration(*qps)
	start := time.Now()
	for i := range *n * len(servers) {
		// Pace by the schedule, not by sleeping a fixed gap after each send,
		// so that a late wake-up does not slow the rate.
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		s := servers[i%len(servers)]
		if err := s.send(i/len(servers), *name); err != nil {
			fmt.Fprintln(os.Stderr, "dnslat:", err)
			os.Exit(1)
		}
	}
	wg.Wait()
	fmt.Printf("%-14s %8s %6s %8s %8s %8s\n", "server", "answered", "lost", "p50", "p90", "p99")
	for _, s := range servers {
		s.report()
	}
}

// server is one server under test: a connected socket, and per query its
// send time and latency.
type server struct {
	label string
	conn  *net.UDPConn
	buf   []byte

	mu   sync.Mutex
	sent []time.Time // by query index, which is also the query ID
	lat  []time.Duration
	last time.Time // when the last query was sent
}

func dial(label, addr string, n int) (*server, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, err
	}
	return &server{label: label, conn: c, buf: make([]byte, 0, 512), sent: make([]time.Time, n)}, nil
}

func (s *server) send(i int, name string) error {
	var m dns.Msg
	m.SetQuestion(dns.Fqdn(strings.ReplaceAll(name, "*", randomLabel())), dns.TypeA)
	m.Id = uint16(i)
	wire, err := m.PackBuffer(s.buf)
	if err != nil {
		return err
	}
	s.mu.Lock()
	now := time.Now()
	s.sent[i], s.last = now, now
	s.mu.Unlock()
	_, err = s.conn.Write(wire)
	return err
}

// receive records the latency of each answer until no query is awaited.
func (s *server) receive(timeout time.Duration) {
	buf := make([]byte, 65535)
	for {
		s.mu.Lock()
		done := len(s.lat) == len(s.sent)
		last := s.last
		s.mu.Unlock()
		if done {
			break
		}
		if !last.IsZero() && time.Since(last) > timeout {
			break // the rest are lost
		}
		s.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := s.conn.Read(buf)
		now := time.Now()
		if err != nil || n < 12 {
			continue
		}
		id := int(buf[0])<<8 | int(buf[1])
		s.mu.Lock()
		if id < len(s.sent) && !s.sent[id].IsZero() {
			s.lat = append(s.lat, now.Sub(s.sent[id]))
			s.sent[id] = time.Time{} // a duplicate answer counts once
		}
		s.mu.Unlock()
	}
	s.conn.Close()
}

func (s *server) report() {
	slices.Sort(s.lat)
	pct := func(p float64) int64 {
		if len(s.lat) == 0 {
			return -1
		}
		i := min(len(s.lat)-1, int(float64(len(s.lat))*p))
		return s.lat[i].Microseconds()
	}
	fmt.Printf("%-14s %8d %6d %8d %8d %8d\n", s.label, len(s.lat), len(s.sent)-len(s.lat), pct(0.50), pct(0.90), pct(0.99))
}

func randomLabel() string {
	var b [8]byte
	rand.Read(b[:])
	return "m" + hex.EncodeToString(b[:])
}
