package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// A UDP client's query for the upstreams is sent on the reader goroutine
// that read it, and its answer, when final, is written to the client by the
// upstream socket's reader goroutine: no goroutine of its own, no channel, no
// context. On an idle machine every hand-over between goroutines can cost
// the wake-up of a sleeping thread, tens of µs on a virtual machine, and
// those hand-overs were most of what forwarding added to the upstream's
// latency. Whatever is not the common case — no answer in time, a truncated
// answer, SERVFAIL or REFUSED, a failed socket — goes on in a goroutine
// that runs resolve from there, as TCP queries do.

// udpQuery is one UDP query forwarded that way.
type udpQuery struct {
	s    *Server
	f    *forwarding
	conn *net.UDPConn
	to   netip.AddrPort
	ups  *upstreamSet
	i    int // the upstream asked, in ups

	mu    sync.Mutex // guards sent and timer, set while sending
	sent  *sentQuery
	timer *time.Timer
}

// forwardUDP forwards f and answers the client on conn, or answers SERVFAIL
// at once when MaxInFlight queries are already waiting.
func (s *Server) forwardUDP(conn *net.UDPConn, to netip.AddrPort, f *forwarding) {
	if !s.acquire() {
		conn.WriteToUDPAddrPort(f.servFail(), to)
		return
	}
	ups := s.upstreams.Load()
	i := ups.first(time.Now())
	if f.via != nil || i < 0 {
		s.goForward(conn, to, f)
		return
	}
	q := &udpQuery{s: s, f: f, conn: conn, to: to, ups: ups, i: i}
	w := &waiter{query: f.query, qEnd: f.qEnd, handle: q.handle}
	// The lock makes handle, which may run as soon as the query is sent,
	// wait until sent and timer are set.
	q.mu.Lock()
	sent, err := ups.pools[i].send(w)
	if err != nil {
		q.mu.Unlock()
		f.first = &attempt{set: ups, i: i, r: result{err: err}}
		s.goForward(conn, to, f)
		return
	}
	q.sent = sent
	q.timer = time.AfterFunc(s.timeout, q.expire)
	q.mu.Unlock()
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
	q.mu.Lock()
	timer := q.timer
	q.mu.Unlock()
	timer.Stop()
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
	q.mu.Lock()
	sent := q.sent
	q.mu.Unlock()
	// A query still pending means that its socket's reader, which is
	// counted in the server's WaitGroup, has not exited: goForward may add
	// to the WaitGroup even while Close waits on it.
	if sent.u.forget(sent.id) {
		q.f.first = &attempt{set: q.ups, i: q.i, r: result{err: context.DeadlineExceeded}}
		q.s.goForward(q.conn, q.to, q.f)
	}
}
