package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// A UDP client's query for the upstreams is sent on the reader goroutine
// that read it, and its answer, when final, is written to the client by the
// upstream socket's reader goroutine: no goroutine of its own, no channel, no
// context. On an idle machine every hand-over between goroutines can cost
// the wake-up of a sleeping thread, tens of µs on a virtual machine, and
// those hand-overs were most of what forwarding added to the upstream's
// latency. Nor is there a timer per query (setting one can wake a thread
// too): one sweeper goroutine expires the queries that wait too long (see
// inflight). Whatever is not the common case — no answer in time, a
// truncated answer, SERVFAIL or REFUSED, a failed socket — goes on in a
// goroutine that runs resolve from there, as TCP queries do.

// udpQuery is one UDP query forwarded that way.
type udpQuery struct {
	s        *Server
	f        *forwarding
	conn     *net.UDPConn
	to       netip.AddrPort
	ups      *upstreamSet
	i        int // the upstream asked, in ups
	deadline time.Time
	// w and sent live in the query, not apart: fewer allocations per
	// forwarded query.
	w    waiter
	sent sentQuery   // set before the query is tracked
	done atomic.Bool // answered, or the socket failed: the sweeper drops it
}

// forwardUDP forwards f and answers the client on conn, or answers SERVFAIL
// at once when MaxInFlight queries are already waiting.
func (s *Server) forwardUDP(conn *net.UDPConn, to netip.AddrPort, f *forwarding) {
	if !s.acquire() {
		conn.WriteToUDPAddrPort(f.servFail(), to)
		return
	}
	ups := s.upstreamsFor(f)
	now := time.Now()
	i := ups.first(now)
	if f.via != nil || i < 0 {
		s.goForward(conn, to, f)
		return
	}
	q := &udpQuery{s: s, f: f, conn: conn, to: to, ups: ups, i: i, deadline: now.Add(s.timeout)}
	q.w = waiter{query: f.query, qEnd: f.qEnd, h: q}
	sent, err := ups.pools[i].send(&q.w)
	if err != nil {
		f.first = &attempt{set: ups, i: i, r: result{err: err}}
		s.goForward(conn, to, f)
		return
	}
	q.sent = sent
	s.inflight.track(s, q)
}

// goForward forwards f in a goroutine of its own, which answers the client
// and releases f's MaxInFlight slot.
func (s *Server) goForward(conn *net.UDPConn, to netip.AddrPort, f *forwarding) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.release()
		conn.WriteToUDPAddrPort(s.forward(f), to)
	}()
}

// handle takes the upstream's answer (or the socket's failure): a final
// answer goes to the client at once, anything else to resolve.
func (q *udpQuery) handle(r result) {
	q.done.Store(true)
	if r.err != nil || r.info.truncated || r.info.rcode == dns.RcodeServerFailure || r.info.rcode == dns.RcodeRefused {
		q.f.first = &attempt{set: q.ups, i: q.i, r: r}
		q.s.goForward(q.conn, q.to, q.f)
		return
	}
	q.ups.markUp(q.i)
	q.conn.WriteToUDPAddrPort(q.s.answered(q.f, withID(r.b, q.f.clientID), nil), q.to)
	q.s.release()
}

// expire gives up waiting for the upstream, unless its answer is being
// handled.
func (q *udpQuery) expire() {
	if q.sent.u.forget(q.sent.id) {
		q.f.first = &attempt{set: q.ups, i: q.i, r: result{err: context.DeadlineExceeded}}
		q.s.goForward(q.conn, q.to, q.f)
	}
}

// inflight holds the queries sent by forwardUDP until they are answered or
// expire. A sweeper goroutine, running while there are queries to watch,
// goes through them all at each of its checks (see sweep), dropping those
// answered and expiring those past their deadline. It once took them from the front only,
// stopping at the first query still waiting: one query the upstream dropped
// then held every query sent after it, answered or not, for the whole
// timeout (24,000 of them at 12,000 forwarded queries/s: the agent's RSS
// grew by 16 MB in the DNS soak with dnsmasq dropping a few queries).
type inflight struct {
	mu      sync.Mutex
	queue   []*udpQuery
	running bool // a sweeper is running
}

// sweepIdle is how long the sweeper stays after the last query is gone, so
// that steady traffic does not start one per query.
const sweepIdle = time.Minute

// track adds q, starting a sweeper if none runs.
func (in *inflight) track(s *Server, q *udpQuery) {
	in.mu.Lock()
	in.queue = append(in.queue, q)
	start := !in.running
	in.running = true
	in.mu.Unlock()
	if start {
		s.wg.Add(1)
		go s.sweep()
	}
}

// due removes the queries answered and those past their deadline,
// returning the latter; empty reports that none is left.
func (in *inflight) due(now time.Time) (expired []*udpQuery, empty bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	kept := in.queue[:0]
	for _, q := range in.queue {
		switch {
		case q.done.Load():
		case !now.Before(q.deadline):
			expired = append(expired, q)
		default:
			kept = append(kept, q)
		}
	}
	clear(in.queue[len(kept):])
	in.queue = kept
	return expired, len(in.queue) == 0
}

// stop ends the sweeper if no query is left (one may have come meanwhile).
func (in *inflight) stop(force bool) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if force || len(in.queue) == 0 {
		in.running = false
		return true
	}
	return false
}

// sweep expires the tracked queries whose deadline has passed, checking
// every quarter of the timeout (at most every 100 ms), until the server
// closes or nothing has been tracked for sweepIdle. A query's wait is thus
// its timeout plus at most one check interval. Expiring needs no goroutine
// for queries that are answered (a socket's reader answers them): a
// query still pending means its socket's reader, counted in the WaitGroup,
// has not exited, so expire's goForward may add to the WaitGroup even while
// Close waits on it.
func (s *Server) sweep() {
	defer s.wg.Done()
	every := min(s.timeout/4, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var idle time.Duration
	for {
		select {
		case <-s.ctx.Done():
			s.inflight.stop(true)
			return
		case now := <-t.C:
			expired, empty := s.inflight.due(now)
			for _, q := range expired {
				q.expire()
			}
			if idle += every; !empty {
				idle = 0
			}
			if idle >= sweepIdle && s.inflight.stop(false) {
				return
			}
		}
	}
}
