package dnsproxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// portUpstream is a UDP upstream that answers every A query with an address
// made from the query's name, after a random delay of up to maxDelay, and
// records the source port and ID of each query.
type portUpstream struct {
	addr netip.AddrPort
	mu   sync.Mutex
	port map[uint16]int // source port → queries
	ids  map[uint16]int // query ID → queries
}

func startPortUpstream(t *testing.T, maxDelay time.Duration) *portUpstream {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := &portUpstream{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), port: map[uint16]int{}, ids: map[uint16]int{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
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
			u.mu.Lock()
			u.port[from.Port()]++
			u.ids[req.Id]++
			u.mu.Unlock()
			resp := answerA(req, "udp")
			var i int
			fmt.Sscanf(req.Question[0].Name, "n%d.", &i)
			resp.Answer[0].(*dns.A).A = net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))
			b, _ := resp.Pack()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if maxDelay > 0 {
					time.Sleep(rand.N(maxDelay))
				}
				pc.WriteToUDPAddrPort(b, from)
			}()
		}
	}()
	return u
}

func (u *portUpstream) counts() (ports, ids int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.port), len(u.ids)
}

// TestUpstreamSocketsShared sends many queries at once, answered out of
// order: each client must get the answer to its own question, through a few
// shared sockets.
func TestUpstreamSocketsShared(t *testing.T) {
	up := startPortUpstream(t, 20*time.Millisecond)
	// A loaded machine (the race detector, other tests) must not turn into
	// SERVFAIL from timeouts.
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, CacheSize: -1, Timeout: 5 * time.Second})
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A burst this large may overflow the proxy's socket buffer
			// (under the race detector, say): retry as stub resolvers do.
			c := &dns.Client{Timeout: 2 * time.Second}
			var (
				resp *dns.Msg
				err  error
			)
			for range 3 {
				if resp, _, err = c.Exchange(newQuery(fmt.Sprintf("n%d.example.", i), dns.TypeA), addr); err == nil {
					break
				}
			}
			if err != nil {
				t.Errorf("query %d: %v", i, err)
				return
			}
			if want := net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String(); rdata(resp.Answer) != want {
				t.Errorf("query %d: answer %q, want %q (rcode %s)", i, rdata(resp.Answer), want, rcodeName(resp.Rcode))
			}
		}()
	}
	wg.Wait()
	ports, ids := up.counts()
	if ports > poolSockets+n/sockMaxUses+1 {
		t.Errorf("%d source ports for %d queries; want a few shared sockets", ports, n)
	}
	if ids < n*8/10 {
		t.Errorf("%d distinct IDs for %d queries; want random IDs", ids, n)
	}
}

// TestUpstreamSocketsRenewed checks that sockets are replaced after
// sockMaxUses queries, so that the source ports keep changing.
func TestUpstreamSocketsRenewed(t *testing.T) {
	up := startPortUpstream(t, 0)
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, CacheSize: -1})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	const n = 3 * poolSockets * sockMaxUses
	for i := range n {
		wire, _ := newQuery(fmt.Sprintf("n%d.example.", i), dns.TypeA).Pack()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(wire); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if ports, _ := up.counts(); ports < n/sockMaxUses {
		t.Errorf("%d source ports for %d queries; want a new one every %d queries", ports, n, sockMaxUses)
	}
}

// TestUpstreamSocketsRetired checks that SetUpstreams closes the sockets of
// upstreams it drops and keeps those of upstreams it keeps.
func TestUpstreamSocketsRetired(t *testing.T) {
	a, b := startUpstream(t, answerA), startUpstream(t, answerA)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{a.addr, b.addr}, CacheSize: -1})
	query(t, "udp", addr, newQuery("x.example.", dns.TypeA))
	old := s.upstreams.Load()
	pa := old.pools[0]
	var used *upSock
	for _, u := range pa.socks {
		if u != nil {
			used = u
		}
	}
	if used == nil {
		t.Fatal("no socket to the first upstream after a query")
	}
	s.SetUpstreams([]netip.AddrPort{b.addr})
	if s.upstreams.Load().pools[0] != old.pools[1] {
		t.Error("the kept upstream's sockets were not kept")
	}
	used.mu.Lock()
	closed := used.closed
	used.mu.Unlock()
	if !closed {
		t.Error("idle socket to a dropped upstream left open")
	}
	query(t, "udp", addr, newQuery("y.example.", dns.TypeA))
	if b.count() != 1 {
		t.Errorf("kept upstream asked %d times, want 1", b.count())
	}
}

// TestAnswerRacingTimeout has the first upstream answer around the moment
// the proxy gives up on it, so that answers and timeouts race: every client
// must get exactly one reply, from one upstream or the other.
func TestAnswerRacingTimeout(t *testing.T) {
	slow := startPortUpstream(t, 60*time.Millisecond) // 0–60 ms
	fast := startPortUpstream(t, 0)
	_, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{slow.addr, fast.addr}, CacheSize: -1, Timeout: 30 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			wire, _ := newQuery(fmt.Sprintf("n%d.example.", i), dns.TypeA).Pack()
			c.Write(wire)
			buf := make([]byte, 1500)
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Errorf("query %d: %v", i, err)
				return
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(buf[:n]); err != nil || rdata(resp.Answer) != net.IPv4(10, 0, 0, byte(i)).String() {
				t.Errorf("query %d: %v %v", i, err, resp)
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Read(buf); err == nil {
				t.Errorf("query %d: a second reply", i)
			}
		}()
	}
	wg.Wait()
}

// TestUpstreamSpareSocket checks that a pool keeps a socket opened ahead and
// that a slot to fill takes it rather than opening one on the query's path.
func TestUpstreamSpareSocket(t *testing.T) {
	up := startPortUpstream(t, 0)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{up.addr}, CacheSize: -1})
	query(t, "udp", addr, newQuery("n1.example.", dns.TypeA))
	p := s.upstreams.Load().pools[0]
	spare := func() *upSock {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.spare
	}
	deadline := time.Now().Add(5 * time.Second)
	for spare() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no spare socket opened after the first query")
		}
		time.Sleep(time.Millisecond)
	}
	want := spare()
	// Every slot emptied: the next query must take the spare.
	p.mu.Lock()
	for i, u := range p.socks {
		if u != nil {
			u.retire()
			p.socks[i] = nil
		}
	}
	p.mu.Unlock()
	query(t, "udp", addr, newQuery("n2.example.", dns.TypeA))
	p.mu.Lock()
	taken := slices.Contains(p.socks[:], want)
	p.mu.Unlock()
	if !taken {
		t.Fatal("a query filling an empty slot did not take the spare socket")
	}
	for spare() == nil || spare() == want {
		if time.Now().After(deadline) {
			t.Fatal("the spare socket was not replaced after it was taken")
		}
		time.Sleep(time.Millisecond)
	}
	s.SetUpstreams(nil)
	if u := spare(); u != nil {
		t.Error("a retired pool kept its spare socket")
	}
}
