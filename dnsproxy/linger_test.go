package dnsproxy

import (
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startDroppingUpstream answers every UDP query with an empty NOERROR
// answer, except one in every dropOneIn, which it drops, as a loaded
// dnsmasq does.
func startDroppingUpstream(t *testing.T, dropOneIn int) netip.AddrPort {
	t.Helper()
	return serveUDP(t, func(c *net.UDPConn) {
		buf := make([]byte, 1500)
		for n := 0; ; n++ {
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n%dropOneIn == 0 || k < headerLen {
				continue
			}
			buf[2] |= 0x80 // QR
			c.WriteToUDPAddrPort(buf[:k], from)
		}
	})
}

// TestDroppingUpstreamSockets sends a burst of queries, unique names, to an
// upstream that drops some: every socket retired after sockMaxUses queries
// then waits on a dropped query until its timeout (10 s here, longer than
// the test). It reports the goroutines and heap the waiting sockets hold,
// and checks that no more than maxLingering retired sockets stay open.
func TestDroppingUpstreamSockets(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 12,000 queries")
	}
	up := startDroppingUpstream(t, 10)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up}, CacheSize: -1, Timeout: 10 * time.Second})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { // drain the answers
		buf := make([]byte, 1500)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	const queries = 12000
	for i := range queries {
		w, err := newQuery("q"+strconv.Itoa(i)+".example.", dns.TypeA).Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(w); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			time.Sleep(10 * time.Millisecond) // about 20,000 queries/s at most
		}
	}
	time.Sleep(300 * time.Millisecond) // the answers come back
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	p := s.upstreams.Load().pools[0]
	p.mu.Lock()
	open := openRetired(p)
	p.mu.Unlock()
	t.Logf("%d queries, 1 in 10 dropped: %d goroutines more, heap %+.1f MB, %d retired sockets open, %d closed early",
		queries, runtime.NumGoroutine()-g0, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1e6, open, s.Stats().UpstreamSocketsEvicted)
	if open > maxLingering {
		t.Errorf("%d retired upstream sockets open, want at most %d", open, maxLingering)
	}
	if s.Stats().UpstreamSocketsEvicted == 0 {
		t.Error("no retired socket closed early")
	}
}

// openRetired counts p's retired sockets still open; p.mu is held.
func openRetired(p *udpPool) int {
	n := 0
	for _, u := range p.lingering {
		if !u.isClosed() {
			n++
		}
	}
	return n
}

// TestInflightDropsAnswered checks that a query still waiting does not keep
// the answered queries sent after it.
func TestInflightDropsAnswered(t *testing.T) {
	now := time.Now()
	waiting := &udpQuery{deadline: now.Add(time.Second)}
	answered := &udpQuery{deadline: now.Add(time.Second)}
	answered.done.Store(true)
	late := &udpQuery{deadline: now.Add(-time.Millisecond)}
	in := inflight{queue: []*udpQuery{waiting, answered, late, answered}}
	expired, empty := in.due(now)
	if len(expired) != 1 || expired[0] != late {
		t.Errorf("expired %v, want the late query alone", expired)
	}
	if empty || len(in.queue) != 1 || in.queue[0] != waiting {
		t.Errorf("left %d queries, want the waiting one alone", len(in.queue))
	}
}
