package dnsproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// errNoUpstreams is the forwarding error when no resolver is configured.
var errNoUpstreams = errors.New("no upstream resolvers configured")

// errNoLocalUpstreams is the forwarding error of a query that may only go to
// the local network's resolvers (Answer.Local) when none is configured.
var errNoLocalUpstreams = errors.New("no upstream resolver on the local network")

// upstreamsFor returns the upstreams f may be sent to.
func (s *Server) upstreamsFor(f *forwarding) *upstreamSet {
	if f.local {
		return s.local.Load()
	}
	return s.upstreams.Load()
}

// forwarding is a query on its way to an upstream: the client's bytes,
// forwarded as they are but for the ID.
type forwarding struct {
	query    []byte // the client's query, ours: its ID is replaced on the way up
	clientID uint16
	qEnd     int // end of the question
	edns, do bool
	maxSize  int    // the largest reply the client takes
	key      string // cache key; "" if the answer is not to be cached
	via      Upstream
	local    bool // only to the local network's upstreams (Answer.Local)
	// first, when set, is the outcome of an attempt at upstream first.i of
	// first.set made before resolve ran (see udpQuery); resolve starts
	// from it.
	first *attempt
}

// attempt is the outcome of asking one upstream over UDP.
type attempt struct {
	set *upstreamSet
	i   int // the upstream's index in set
	r   result
}

// acquire takes one of the MaxInFlight slots for a query to the upstreams.
//
// When they are all taken the query is answered SERVFAIL at once rather than
// queued or dropped: the client's stub resolver then fails fast (or tries its
// next server) instead of waiting out its multi-second timeout, and the proxy
// keeps no unbounded backlog. Local answers and cache hits never need a slot.
func (s *Server) acquire() bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
		n := s.counter.saturated.Add(1)
		if s.satLog.allow() {
			// Every such SERVFAIL is the agent's own: say so, or a
			// client's failure would be blamed on the upstreams.
			s.log.Warn("forwarded DNS queries answered SERVFAIL: as many as MaxInFlight wait for the upstreams",
				zap.Int("max_in_flight", cap(s.sem)), zap.Uint64("refused_total", n))
		}
		return false
	}
}

func (s *Server) release() { <-s.sem }

// evicted counts a retired socket to up closed early with queries (waiting
// queries) still on it, and logs it now and then.
func (s *Server) evicted(up netip.AddrPort, queries int) {
	n := s.counter.evicted.Add(1)
	if s.evLog.allow() {
		s.log.Warn("upstream socket closed early, its unanswered queries failed as on a timeout: too many retired sockets wait on queries the upstream has not answered",
			zap.Stringer("upstream", up), zap.Int("max_lingering", maxLingering),
			zap.Int("queries", queries), zap.Uint64("closed_early_total", n))
	}
}

// forward asks f.via, or the upstreams if it is nil, and returns the reply
// for the client: the upstream's answer, or SERVFAIL.
func (s *Server) forward(f *forwarding) []byte {
	var (
		ans, tc []byte
		err     error
	)
	if f.via != nil {
		ans, err = s.resolveVia(f)
	} else {
		ans, tc, err = s.resolve(f)
	}
	binary.BigEndian.PutUint16(f.query, f.clientID)
	if err != nil {
		s.counter.servFail.Add(1)
		if s.upLog.allow() {
			name, _, _ := dns.UnpackDomainName(f.query, headerLen)
			s.log.Warn("no upstream answered", zap.String("qname", name), zap.Error(err))
		}
		return f.servFail()
	}
	return s.answered(f, ans, tc)
}

// answered counts and caches the answer to f (carrying the client's ID) and
// returns the reply for the client. Only the upstreams' answers are cached:
// a publisher's come with routes whose lifetime the agent manages. The
// answer is cached before the client has it, so that the client's next,
// identical query is a hit.
func (s *Server) answered(f *forwarding, ans, tc []byte) []byte {
	if f.via != nil {
		s.counter.delegated.Add(1)
	} else {
		s.counter.forwarded.Add(1)
		if f.key != "" {
			s.cache.put(f.key, ans, tc, time.Now())
		}
	}
	return fit(ans, tc, f.maxSize)
}

// servFail is the agent's SERVFAIL reply to f's query.
func (f *forwarding) servFail() []byte {
	return appendReply(nil, f.query, f.qEnd, f.edns, f.do, &reply{rcode: dns.RcodeServerFailure})
}

// fit returns the answer the client can take: ans, or else tc (the
// upstream's truncated UDP answer, when ans came over TCP), or else ans
// truncated by the agent with TC set, so that the client retries over TCP.
// The last happens only for answers from a publisher or an upstream that
// ignored the buffer size.
func fit(ans, tc []byte, maxSize int) []byte {
	if len(ans) <= maxSize {
		return ans
	}
	if tc != nil && len(tc) <= maxSize {
		return tc
	}
	m := new(dns.Msg)
	if err := m.Unpack(ans); err == nil {
		m.Truncate(maxSize)
		if b, err := m.Pack(); err == nil && len(b) <= maxSize {
			return b
		}
	}
	// Header and question only, TC set.
	info, _ := walkResponse(ans)
	b := bytes.Clone(ans[:max(info.qEnd, headerLen)])
	b[2] |= flagTC >> 8
	binary.BigEndian.PutUint16(b[6:], 0)
	binary.BigEndian.PutUint16(b[8:], 0)
	binary.BigEndian.PutUint16(b[10:], 0)
	return b
}

// resolve sends f's query to the upstreams until one answers with something
// other than SERVFAIL or REFUSED, and returns that answer (with the client's
// ID) and, if it came over TCP, the truncated UDP answer before it.
// Upstreams are tried in order, except that those that recently failed to
// answer at all are tried last (see upstreamSet), and one already asked
// (f.first) comes first. If every upstream answers SERVFAIL or
// REFUSED, the last such answer is returned; if none answers, an error.
func (s *Server) resolve(f *forwarding) (ans, tc []byte, err error) {
	ups, first := s.upstreamsFor(f), -1
	if f.first != nil {
		ups, first = f.first.set, f.first.i
	}
	if len(ups.addrs) == 0 {
		if f.local {
			return nil, nil, errNoLocalUpstreams
		}
		return nil, nil, errNoUpstreams
	}
	var errs []error
	for _, i := range ups.order(time.Now(), first) {
		a, t, rcode, err := s.exchange(ups, i, f)
		if err != nil {
			if s.ctx.Err() != nil {
				return nil, nil, s.ctx.Err()
			}
			s.counter.upstreamErrors.Add(1)
			ups.markDown(i, time.Now())
			errs = append(errs, fmt.Errorf("%v: %w", ups.addrs[i], err))
			continue
		}
		ups.markUp(i)
		ans, tc = withID(a, f.clientID), withID(t, f.clientID)
		if rcode != dns.RcodeServerFailure && rcode != dns.RcodeRefused {
			return ans, tc, nil
		}
	}
	if ans != nil {
		return ans, tc, nil
	}
	return nil, nil, errors.Join(errs...)
}

func withID(m []byte, id uint16) []byte {
	if m != nil {
		binary.BigEndian.PutUint16(m, id)
	}
	return m
}

// exchange asks upstream i of ups over UDP (or takes the outcome of
// f.first), and again over TCP if the UDP answer is truncated. It returns the
// answer, the truncated UDP one if the answer came over TCP, and the answer's
// rcode.
func (s *Server) exchange(ups *upstreamSet, i int, f *forwarding) (ans, tc []byte, rcode int, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	var r result
	if f.first != nil {
		r, f.first = f.first.r, nil
	} else {
		w := &waiter{query: f.query, qEnd: f.qEnd, done: make(chan result, 1)}
		q, err := ups.pools[i].send(w)
		if err != nil {
			return nil, nil, 0, err
		}
		r = q.wait(ctx)
	}
	switch {
	case r.err != nil:
		return nil, nil, 0, r.err
	case !r.info.truncated:
		return r.b, nil, r.info.rcode, nil
	}
	full, info, err := exchangeTCP(ctx, ups.addrs[i], f.query, f.qEnd)
	if err != nil {
		return nil, nil, 0, err
	}
	return full, r.b, info.rcode, nil
}

// resolveVia sends f's query to a policy's Upstream (publisher DNS).
func (s *Server) resolveVia(f *forwarding) ([]byte, error) {
	q := bytes.Clone(f.query)        // the Upstream may keep it
	binary.BigEndian.PutUint16(q, 0) // RFC 8484 4.1: ID 0 over DoH
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	raw, err := f.via.Exchange(ctx, q)
	if err == nil {
		_, err = checkAnswer(raw, 0, q, f.qEnd)
	}
	if err != nil {
		s.counter.upstreamErrors.Add(1)
		return nil, fmt.Errorf("publisher DNS: %w", err)
	}
	return withID(raw, f.clientID), nil
}

// exchangeTCP asks up over a new TCP connection, with a fresh random ID.
func exchangeTCP(ctx context.Context, up netip.AddrPort, query []byte, qEnd int) ([]byte, respInfo, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", up.String())
	if err != nil {
		return nil, respInfo{}, err
	}
	defer conn.Close()
	stop := bindDeadline(ctx, conn)
	defer stop()
	id := uint16(rand.Uint32())
	msg := make([]byte, 2+len(query))
	binary.BigEndian.PutUint16(msg, uint16(len(query)))
	copy(msg[2:], query)
	binary.BigEndian.PutUint16(msg[2:], id)
	if _, err := conn.Write(msg); err != nil {
		return nil, respInfo{}, err
	}
	var lenBuf [2]byte
	if _, err := io.ReadFull(conn, lenBuf[:]); err != nil {
		return nil, respInfo{}, err
	}
	raw := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
	if _, err := io.ReadFull(conn, raw); err != nil {
		return nil, respInfo{}, err
	}
	info, err := checkAnswer(raw, id, query, qEnd)
	if err != nil {
		return nil, respInfo{}, err
	}
	return raw, info, nil
}

// bindDeadline applies ctx's deadline to conn and unblocks conn's I/O when ctx
// is cancelled early (by Close).
func bindDeadline(ctx context.Context, conn net.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

// downFor is how long an upstream that did not answer is tried only after the
// others. It keeps a dead first nameserver from adding a timeout to every
// query, and lets it back in first place soon after it recovers.
const downFor = 30 * time.Second

// upstreamSet is one immutable list of upstreams with the health learnt about
// them and the sockets to ask them through, swapped whole by SetUpstreams.
type upstreamSet struct {
	addrs     []netip.AddrPort
	pools     []*udpPool
	downUntil []atomic.Int64 // unix nanoseconds; 0 when healthy
}

// order is the order in which upstreams are tried: first (if not -1), then
// the others not marked down, then those marked down, each in order.
func (u *upstreamSet) order(now time.Time, first int) []int {
	out := make([]int, 0, len(u.addrs))
	if first >= 0 {
		out = append(out, first)
	}
	for pass := range 2 {
		for i := range u.addrs {
			if i != first && u.down(i, now) == (pass == 1) {
				out = append(out, i)
			}
		}
	}
	return out
}

// first is the upstream tried first, -1 if there is none.
func (u *upstreamSet) first(now time.Time) int {
	for i := range u.addrs {
		if !u.down(i, now) {
			return i
		}
	}
	if len(u.addrs) > 0 {
		return 0
	}
	return -1
}

func (u *upstreamSet) down(i int, now time.Time) bool {
	return now.UnixNano() < u.downUntil[i].Load()
}

func (u *upstreamSet) markDown(i int, now time.Time) {
	u.downUntil[i].Store(now.Add(downFor).UnixNano())
}

func (u *upstreamSet) markUp(i int) {
	if u.downUntil[i].Load() != 0 {
		u.downUntil[i].Store(0)
	}
}

// addrsOrNil is u's addresses; nil for a nil set (before the first one).
func (u *upstreamSet) addrsOrNil() []netip.AddrPort {
	if u == nil {
		return nil
	}
	return u.addrs
}
