package dnsproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Forwarded queries reach each upstream through a few long-lived UDP
// sockets connected to it, shared by the queries in flight: a query takes one
// at random, picks a random ID free on it, and waits for the socket's reader
// goroutine to hand it the answer with that ID and its question. Opening a
// socket per query, as before, cost more than everything else on the
// forwarding path.
//
// Replacing a socket costs a few system calls and a goroutine: a query that
// had to wait for them landed in the forwarding latency's worst percentile
// (1 in sockMaxUses queries). So each pool keeps a spare socket, opened in the
// background, that the next query finding its slot empty takes at once; the
// spare's replacement is opened in the background in turn.
//
// Spoofing: the socket being connected, the kernel delivers only the
// upstream's packets (its address and port). A blind spoofer must then hit
// one of poolSockets random source ports and the query's random 16-bit ID,
// and send the exact question; and since a socket is replaced after
// sockMaxUses queries or sockMaxAge, a port it learns or guesses is soon
// worth nothing.
const (
	poolSockets = 4
	sockMaxUses = 256
	sockMaxAge  = time.Minute
	// sockReadBuffer is the receive buffer asked for each socket.
	sockReadBuffer = 1 << 20
	// listenReadBuffer is the receive buffer asked for each listening
	// socket, where every client's queries arrive. Linux doubles what is
	// asked and counts each packet's whole buffer, 832 bytes for a query
	// over loopback: 4 MB hold about 10,000 queries, half a second at
	// 20,000 queries/s while the agent is not scheduled on a busy machine
	// (1 MB, a quarter of that, lost queries in the DNS soak). Linux caps
	// the request at net.core.rmem_max (208 kB by default; raised where a
	// machine serves many clients, as for any busy resolver).
	listenReadBuffer = 4 << 20
	// maxLingering bounds the sockets of a pool that are retired but still
	// wait on queries (see lingerLocked).
	maxLingering = 32
)

// errRetired is returned to a query whose socket was retired before it could
// be sent; the query is then given another socket.
var errRetired = errors.New("upstream socket retired")

// errEvicted is the outcome of the queries on a retired socket closed early
// (see lingerLocked): for the query, the same as a timeout.
var errEvicted = errors.New("upstream socket closed early: too many retired sockets wait on unanswered queries")

// udpPool is the set of sockets to one upstream.
type udpPool struct {
	s    *Server // for its context and WaitGroup
	addr netip.AddrPort

	mu      sync.Mutex
	socks   [poolSockets]*upSock
	spare   *upSock // opened ahead, taken by the next slot to fill
	filling bool    // a goroutine is opening the spare
	retired bool    // the upstream is no longer configured
	// lingering are the sockets retired after sockMaxUses queries or
	// sockMaxAge, oldest first, that may still wait on queries.
	lingering []*upSock
}

// upSock is one connected socket and the queries waiting on it.
type upSock struct {
	conn *net.UDPConn
	born time.Time
	stop func() bool // undoes the AfterFunc that closes conn with the server

	mu      sync.Mutex
	pending map[uint16]*waiter
	uses    int
	retired bool // takes no new query; closed once pending is empty
	closed  bool
}

// waiter is one query waiting on an upSock.
type waiter struct {
	query []byte // the question, query[headerLen:qEnd], is what answers must match
	qEnd  int
	// Either done receives the result (a goroutine waits on it; buffered,
	// so that the reader never blocks), or h is called with it, on the
	// socket's reader goroutine (or a timer's), and must not block. An
	// interface rather than a func value: a method value would be one more
	// allocation per forwarded query.
	done chan result
	h    resultHandler
}

// resultHandler takes a waiter's result (see waiter.h).
type resultHandler interface{ handle(result) }

func (w *waiter) complete(r result) {
	if w.h != nil {
		w.h.handle(r)
		return
	}
	w.done <- r
}

type result struct {
	b    []byte
	info respInfo
	err  error
}

func newUDPPool(s *Server, addr netip.AddrPort) *udpPool {
	return &udpPool{s: s, addr: addr}
}

// sentQuery is a query sent on an upstream socket and not yet answered.
type sentQuery struct {
	u  *upSock
	id uint16
	w  *waiter
}

// send sends w's query (whose ID it overwrites) on a socket of the pool.
func (p *udpPool) send(w *waiter) (sentQuery, error) {
	for {
		u, id, err := p.register(w)
		if err != nil {
			return sentQuery{}, err
		}
		if err := u.write(w.query, id); err != nil {
			if !u.forget(id) {
				// The socket failed meanwhile and has given w its
				// error, or will: w has its outcome either way.
				return sentQuery{u: u, id: id, w: w}, nil
			}
			if errors.Is(err, net.ErrClosed) {
				continue // retired and closed meanwhile: take another
			}
			return sentQuery{}, err
		}
		return sentQuery{u: u, id: id, w: w}, nil
	}
}

// packetBufs hold the packets written to upstream sockets.
var packetBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// write sends query with the upstream ID id. It sends a copy: once a query
// is registered, a failing socket may complete its waiter, and the next
// attempt then rewrites the query's ID while this write may still read it.
func (u *upSock) write(query []byte, id uint16) error {
	bp := packetBufs.Get().(*[]byte)
	b := append((*bp)[:0], query...)
	binary.BigEndian.PutUint16(b, id)
	_, err := u.conn.Write(b)
	*bp = b
	packetBufs.Put(bp)
	return err
}

// wait returns the checked answer to q, or an error when ctx is done first
// or the socket fails.
func (q *sentQuery) wait(ctx context.Context) result {
	select {
	case r := <-q.w.done:
		return r
	case <-ctx.Done():
		if q.u.forget(q.id) {
			return result{err: ctx.Err()}
		}
		return <-q.w.done // being delivered at this very moment
	}
}

// register puts w on a random socket of the pool, opening one if that slot
// is empty or its socket retired, and returns the socket and w's ID there.
func (p *udpPool) register(w *waiter) (*upSock, uint16, error) {
	i := rand.IntN(poolSockets)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		u := p.socks[i]
		if u == nil {
			var err error
			if u, err = p.takeSpareLocked(); err != nil {
				return nil, 0, err
			}
			if !p.retired {
				p.socks[i] = u
			}
		}
		id, last, err := u.add(w, p.retired)
		if err == nil {
			if last && !p.retired {
				p.lingerLocked(u)
			}
			return u, id, nil
		}
		p.socks[i] = nil
	}
}

// takeSpareLocked returns the spare socket, or a new one when there is none
// yet, and has the next spare opened in the background. The spare's age
// counts from now: its time waiting was no use to anyone.
func (p *udpPool) takeSpareLocked() (*upSock, error) {
	u := p.spare
	p.spare = nil
	if u != nil {
		u.mu.Lock()
		u.born = time.Now()
		u.mu.Unlock()
	} else {
		var err error
		if u, err = p.open(); err != nil {
			return nil, err
		}
	}
	if !p.retired && !p.filling {
		p.filling = true
		p.s.wg.Add(1)
		go p.fillSpare()
	}
	return u, nil
}

// fillSpare opens the pool's next spare socket. Failing, it leaves none: the
// query that needs a socket then opens one itself and gets the error.
func (p *udpPool) fillSpare() {
	defer p.s.wg.Done()
	u, err := p.open()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.filling = false
	if err != nil {
		return
	}
	if p.retired || p.spare != nil {
		u.retire()
		return
	}
	p.spare = u
}

// open connects a new socket to the upstream and starts its reader.
func (p *udpPool) open() (*upSock, error) {
	if err := p.s.ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.addr))
	if err != nil {
		return nil, err
	}
	// Answers to a burst of queries arrive together on few sockets: room
	// for them, as far as the system allows (net.core.rmem_max on Linux).
	conn.SetReadBuffer(sockReadBuffer)
	u := &upSock{conn: conn, born: time.Now(), pending: make(map[uint16]*waiter)}
	u.stop = context.AfterFunc(p.s.ctx, func() { conn.Close() })
	p.s.wg.Add(1)
	go p.s.readUpstream(u)
	return u, nil
}

// retire makes the pool's sockets take no new query; each is closed once its
// queries are answered. Queries that still come (from a forwarding that
// began before the upstream was removed) get a socket of their own.
func (p *udpPool) retire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retired = true
	if p.spare != nil {
		p.spare.retire()
		p.spare = nil
	}
	for i, u := range p.socks {
		if u != nil {
			u.retire()
			p.socks[i] = nil
		}
	}
}

// add registers w under a random ID free on u. With last, u is retired
// after this query; retired reports whether it was, for any reason.
func (u *upSock) add(w *waiter, last bool) (id uint16, retired bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.retired || u.closed {
		return 0, false, errRetired
	}
	id = uint16(rand.Uint32())
	for u.pending[id] != nil {
		id = uint16(rand.Uint32())
	}
	u.pending[id] = w
	u.uses++
	if last || u.uses >= sockMaxUses || time.Since(u.born) >= sockMaxAge {
		u.retired = true
	}
	return id, u.retired, nil
}

// forget removes the query with the given ID, which is no longer waited for.
// It reports false if the query was no longer pending: its answer or error
// is then on its way to the waiter.
func (u *upSock) forget(id uint16) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, pending := u.pending[id]
	delete(u.pending, id)
	u.closeIfDoneLocked()
	return pending
}

// lingerLocked adds u, just retired, to the pool's lingering sockets. A
// retired socket is closed once its last query is answered or expires; with
// an upstream that drops queries, nearly every one waits out the timeout,
// and at 20,000 queries/s (a socket retired every 256) tens of them were
// open at once. Past maxLingering the oldest is closed now, its queries
// failing as on a timeout (the next upstream, or SERVFAIL): forced only
// beyond about 4,000 queries/s to one upstream with the default 2 s timeout
// (32 sockets of 256 queries), when its answers are that late.
func (p *udpPool) lingerLocked(u *upSock) {
	open := p.lingering[:0]
	for _, l := range p.lingering {
		if !l.isClosed() {
			open = append(open, l)
		}
	}
	clear(p.lingering[len(open):])
	p.lingering = append(open, u)
	if len(p.lingering) <= maxLingering {
		return
	}
	old := p.lingering[0]
	p.lingering[0] = nil
	p.lingering = p.lingering[1:]
	// It may have closed since it was found open (its last answer came
	// meanwhile): only one closed with queries still on it is counted.
	if n := old.fail(errEvicted); n > 0 {
		p.s.evicted(p.addr, n)
	}
}

func (u *upSock) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

func (u *upSock) retire() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.retired = true
	u.closeIfDoneLocked()
}

func (u *upSock) closeIfDoneLocked() {
	if u.retired && len(u.pending) == 0 && !u.closed {
		u.closed = true
		u.stop()
		u.conn.Close() // the reader then exits
	}
}

// readBufs holds the buffers answers from upstream sockets are read into.
// Answers are read into dns.MaxMsgSize: a query is forwarded with the
// client's own EDNS buffer size, which may be up to 65,535 bytes.
var readBufs = sync.Pool{New: func() any { b := make([]byte, dns.MaxMsgSize); return &b }}

// readUpstream hands each answer arriving on u to the query it answers, and
// skips packets that answer none (late, or spoofed). When reading fails (the
// socket closed, or an ICMP error such as port unreachable reported on it),
// every query still waiting gets the error and the socket is done.
func (s *Server) readUpstream(u *upSock) {
	defer s.wg.Done()
	r := newUpReader(u.conn)
	for {
		m, err := r.read()
		if err != nil {
			u.fail(err)
			return
		}
		u.deliver(m)
		r.release()
	}
}

func (u *upSock) deliver(m []byte) {
	if len(m) < headerLen {
		return
	}
	id := binary.BigEndian.Uint16(m)
	u.mu.Lock()
	w := u.pending[id]
	if w == nil {
		u.mu.Unlock()
		return
	}
	info, err := checkAnswer(m, id, w.query, w.qEnd)
	if errors.Is(err, errMismatch) {
		u.mu.Unlock()
		return
	}
	delete(u.pending, id)
	u.closeIfDoneLocked()
	u.mu.Unlock()
	if err != nil {
		w.complete(result{err: err})
		return
	}
	w.complete(result{b: bytes.Clone(m), info: info})
}

// fail completes every query waiting on u with err and closes u; it returns
// how many there were.
func (u *upSock) fail(err error) int {
	u.mu.Lock()
	waiters := make([]*waiter, 0, len(u.pending))
	for id, w := range u.pending {
		waiters = append(waiters, w)
		delete(u.pending, id)
	}
	u.retired = true
	u.closeIfDoneLocked()
	u.mu.Unlock()
	for _, w := range waiters {
		w.complete(result{err: err})
	}
	return len(waiters)
}
