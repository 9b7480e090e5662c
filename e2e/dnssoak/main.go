// Command dnssoak loads a DNS server for a long time at a fixed rate from many
// UDP sockets with a mix of private, public and NXDOMAIN names, and checks
// every answer: the DNS soak of issue 15 (e2e TestDNSSoak, `make soak`).
//
// Names: private ones are -private-n names from -private ('*' becomes n0,
// n1, …: a fixed set, as real clients ask the same names again); public ones
// alternate between -public-n fixed names and a unique name per query (cache
// hits and misses); NXDOMAIN ones are unique. A private answer must be NOERROR
// with one A record in -stubs, a public one NOERROR with an A record, an
// NXDOMAIN one NXDOMAIN; anything else, and a query unanswered after
// -timeout, is an error.
//
// It prints one line per second (sent, ok, bad, lost in that second) and a
// last line "total sent=… ok=… bad=… lost=… servfail=… qps=… drops=…"
// (servfail: the bad answers that were SERVFAIL; drops: answers the kernel
// dropped at the load's own sockets, -1 if unknown), and exits 1 if any query
// failed.
//
// Usage:
//
//	dnssoak -server 100.64.0.1:53 -qps 20000 -duration 10m -sockets 64
package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

type kind uint8

const (
	private kind = iota
	public
	nxdomain
)

type config struct {
	server            string
	qps, sockets      int
	duration, timeout time.Duration
	private, public   string
	nx                string
	privateN, publicN int
	mix               [3]int // per 10 queries: private, public, NXDOMAIN
	stubs             netip.Prefix
}

// totals counts queries; servfail counts the bad answers that were SERVFAIL
// (what a resolver answers when its upstream does not).
type totals struct{ sent, ok, bad, lost, servfail atomic.Uint64 }

func main() {
	var c config
	var mix, stubs string
	flag.StringVar(&c.server, "server", "", "DNS server host:port")
	flag.IntVar(&c.qps, "qps", 20000, "queries per second, in total")
	flag.IntVar(&c.sockets, "sockets", 64, "UDP sockets (each its own source port)")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "how long to send")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Second, "how long to wait for an answer (a stub resolver's first retry)")
	flag.StringVar(&c.private, "private", "*.apps.corp.test", "private names; '*' becomes n0…")
	flag.IntVar(&c.privateN, "private-n", 1000, "how many private names")
	flag.StringVar(&c.public, "public", "*.soak.public.test", "public names; '*' becomes a label")
	flag.IntVar(&c.publicN, "public-n", 1000, "how many fixed public names (the other half are unique)")
	flag.StringVar(&c.nx, "nx", "*.nx.test", "NXDOMAIN names; '*' becomes a unique label")
	flag.StringVar(&mix, "mix", "4,4,2", "private,public,NXDOMAIN queries out of every 10")
	flag.StringVar(&stubs, "stubs", "100.64.0.0/10", "where private answers must lie")
	flag.Parse()
	var err error
	if c.stubs, err = netip.ParsePrefix(stubs); err != nil || c.server == "" || c.qps <= 0 || c.sockets <= 0 {
		fmt.Fprintln(os.Stderr, "usage: dnssoak -server host:port [-qps N] [-duration D] [-sockets N] [-mix p,q,r]")
		os.Exit(2)
	}
	if _, err := fmt.Sscanf(mix, "%d,%d,%d", &c.mix[0], &c.mix[1], &c.mix[2]); err != nil || c.mix[0]+c.mix[1]+c.mix[2] != 10 {
		fmt.Fprintln(os.Stderr, "dnssoak: -mix wants three counts that add up to 10")
		os.Exit(2)
	}
	var t totals
	if err := run(&c, &t); err != nil {
		fmt.Fprintln(os.Stderr, "dnssoak:", err)
		os.Exit(1)
	}
	if t.bad.Load()+t.lost.Load() > 0 {
		os.Exit(1)
	}
}

func run(c *config, t *totals) error {
	socks := make([]*sock, c.sockets)
	for i := range socks {
		conn, err := net.Dial("udp", c.server)
		if err != nil {
			return err
		}
		uc := conn.(*net.UDPConn)
		// Answers must not be lost at the load's own sockets, so that a
		// drop counted in the namespace is the agent's.
		uc.SetReadBuffer(4 << 20)
		socks[i] = &sock{c: c, t: t, conn: uc, id: i, out: make(map[uint16]pending)}
	}
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Add(1)
		go func() { defer wg.Done(); s.receive() }()
	}
	start := time.Now()
	done := make(chan struct{})
	var reportWG sync.WaitGroup
	reportWG.Add(1)
	go func() { defer reportWG.Done(); report(t, done) }()
	send(c, socks, start)
	// Let the last answers arrive, then count what is still missing.
	time.Sleep(c.timeout)
	drops, dropsErr := socketDrops(socks)
	for _, s := range socks {
		s.expire(time.Now().Add(time.Hour))
		s.conn.Close()
	}
	wg.Wait()
	close(done)
	reportWG.Wait()
	el := time.Since(start) - c.timeout
	if dropsErr != nil {
		fmt.Fprintln(os.Stderr, "dnssoak: counting drops:", dropsErr)
		drops = -1
	}
	fmt.Printf("total sent=%d ok=%d bad=%d lost=%d servfail=%d qps=%.0f drops=%d\n",
		t.sent.Load(), t.ok.Load(), t.bad.Load(), t.lost.Load(), t.servfail.Load(), float64(t.sent.Load())/el.Seconds(), drops)
	return nil
}

// socketDrops is how many answers the kernel dropped at the load's own
// sockets (their receive buffers full: the load was not scheduled), from the
// drops column of /proc/net/udp, or udp6 for a server over IPv6 (Linux), so
// that a lost query is told apart from one the server dropped.
func socketDrops(socks []*sock) (int, error) {
	ports := make(map[uint16]bool, len(socks))
	table := "/proc/net/udp"
	for _, s := range socks {
		local := s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
		ports[local.Port()] = true
		if !local.Addr().Is4() {
			table = "/proc/net/udp6"
		}
	}
	b, err := os.ReadFile(table)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 {
			continue
		}
		_, port, _ := strings.Cut(f[1], ":")
		p, err1 := strconv.ParseUint(port, 16, 16)
		d, err2 := strconv.Atoi(f[len(f)-1])
		if err1 == nil && err2 == nil && ports[uint16(p)] {
			total += d
		}
	}
	return total, nil
}

// send paces the queries in 10 ms rounds, spread over the sockets, catching up
// after a late round so that the total stays qps × duration.
func send(c *config, socks []*sock, start time.Time) {
	const round = 10 * time.Millisecond
	total := int(c.duration.Seconds() * float64(c.qps))
	n := 0
	tick := time.NewTicker(round)
	defer tick.Stop()
	lastExpire := start
	for n < total {
		now := <-tick.C
		due := min(total, int(now.Sub(start).Seconds()*float64(c.qps)))
		for ; n < due; n++ {
			socks[n%len(socks)].send(n)
		}
		if now.Sub(lastExpire) > 100*time.Millisecond {
			for _, s := range socks {
				s.expire(now)
			}
			lastExpire = now
		}
	}
}

func report(t *totals, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prev [4]uint64
	for sec := 1; ; sec++ {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		cur := [4]uint64{t.sent.Load(), t.ok.Load(), t.bad.Load(), t.lost.Load()}
		fmt.Printf("t=%ds sent=%d ok=%d bad=%d lost=%d\n", sec, cur[0]-prev[0], cur[1]-prev[1], cur[2]-prev[2], cur[3]-prev[3])
		prev = cur
	}
}

type pending struct {
	k    kind
	sent time.Time
}

// sock is one UDP socket: its queries in flight by ID.
type sock struct {
	c    *config
	t    *totals
	conn *net.UDPConn
	id   int

	mu     sync.Mutex
	out    map[uint16]pending
	nextID uint16
	badLog int    // bad answers printed, to keep the output short
	wbuf   []byte // the query being sent (send runs on one goroutine)
}

func (s *sock) send(n int) {
	k := kind(0)
	switch slot := n % 10; {
	case slot < s.c.mix[0]:
		k = private
	case slot < s.c.mix[0]+s.c.mix[1]:
		k = public
	default:
		k = nxdomain
	}
	name := s.name(k, n)
	s.mu.Lock()
	for { // skip IDs still in flight
		s.nextID++
		if _, busy := s.out[s.nextID]; !busy {
			break
		}
	}
	id := s.nextID
	s.out[id] = pending{k: k, sent: time.Now()}
	s.mu.Unlock()
	s.wbuf = appendQuery(s.wbuf[:0], id, name)
	_, err := s.conn.Write(s.wbuf)
	s.t.sent.Add(1)
	if err != nil {
		s.mu.Lock()
		delete(s.out, id)
		s.mu.Unlock()
		s.bad(fmt.Sprintf("send: %v", err))
	}
}

func (s *sock) name(k kind, n int) string {
	var label string
	switch {
	case k == private:
		label = "n" + strconv.Itoa((n/10)%s.c.privateN)
	case k == public && (n/10)%2 == 0:
		label = "f" + strconv.Itoa((n/20)%s.c.publicN)
	default:
		label = "u" + strconv.Itoa(s.id) + "-" + strconv.Itoa(n)
	}
	pattern := s.c.nx
	switch k {
	case private:
		pattern = s.c.private
	case public:
		pattern = s.c.public
	}
	return strings.Replace(pattern, "*", label, 1)
}

func (s *sock) receive() {
	buf := make([]byte, 4096)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if !strings.Contains(err.Error(), "use of closed") {
				s.bad(fmt.Sprintf("read: %v", err))
			}
			return
		}
		m, err := parseReply(buf[:n])
		if err != nil {
			s.bad(fmt.Sprintf("reply: %v", err))
			continue
		}
		s.mu.Lock()
		p, ok := s.out[m.id]
		delete(s.out, m.id)
		s.mu.Unlock()
		if !ok {
			s.bad(fmt.Sprintf("answer to no query in flight (ID %d, late?)", m.id))
			continue
		}
		if why := s.check(p.k, &m); why != "" {
			if m.rcode == dns.RcodeServerFailure {
				s.t.servfail.Add(1)
			}
			s.bad(why)
			continue
		}
		s.t.ok.Add(1)
	}
}

func (s *sock) check(k kind, m *answer) string {
	if k == nxdomain {
		if m.rcode != dns.RcodeNameError {
			return fmt.Sprintf("%s: %s, want NXDOMAIN", m.qname(), rcodeName(m.rcode))
		}
		return ""
	}
	if m.rcode != dns.RcodeSuccess || m.ancount != 1 {
		return fmt.Sprintf("%s: %s with %d answers, want NOERROR and one A", m.qname(), rcodeName(m.rcode), m.ancount)
	}
	if !m.a.IsValid() {
		return fmt.Sprintf("%s: the answer is not an A record", m.qname())
	}
	if k == private && !s.c.stubs.Contains(m.a) {
		return fmt.Sprintf("%s: %s is not a stub address", m.qname(), m.a)
	}
	return ""
}

// expire counts the queries sent before now - timeout as lost.
func (s *sock) expire(now time.Time) {
	s.mu.Lock()
	lost := 0
	for id, p := range s.out {
		if now.Sub(p.sent) > s.c.timeout {
			delete(s.out, id)
			lost++
		}
	}
	s.mu.Unlock()
	s.t.lost.Add(uint64(lost))
}

func (s *sock) bad(why string) {
	s.t.bad.Add(1)
	s.mu.Lock()
	s.badLog++
	show := s.badLog <= 3
	s.mu.Unlock()
	if show {
		fmt.Fprintln(os.Stderr, "bad:", why)
	}
}
