package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// errMismatch marks an upstream packet that is not the answer to our query.
var errMismatch = errors.New("response does not match the query")

// forward answers req from the cache or the upstreams, waiting for the
// answer (the TCP path; UDP uses the same pieces without blocking its reader).
func (s *Server) forward(w dns.ResponseWriter, req *dns.Msg, via Upstream) {
	if (via == nil && s.answerFromCache(w, req)) || !s.acquire(w, req) {
		return
	}
	defer s.release()
	s.resolveAndWrite(w, req, via)
}

// answerFromCache writes the cached answer to req, if there is one.
func (s *Server) answerFromCache(w dns.ResponseWriter, req *dns.Msg) bool {
	if s.cache == nil {
		return false
	}
	resp := s.cache.get(req, time.Now())
	if resp == nil {
		return false
	}
	s.counter.cacheHits.Add(1)
	writeSized(w, resp, clientMaxSize(w, req))
	return true
}

// acquire takes one of the MaxInFlight slots for a query to the upstreams.
//
// When they are all taken the query is answered SERVFAIL at once rather than
// queued or dropped: the client's stub resolver then fails fast (or tries its
// next server) instead of waiting out its multi-second timeout, and the proxy
// keeps no unbounded backlog. Local answers and cache hits never need a slot.
func (s *Server) acquire(w dns.ResponseWriter, req *dns.Msg) bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
		s.counter.saturated.Add(1)
		w.WriteMsg(errorReply(req, dns.RcodeServerFailure))
		return false
	}
}

func (s *Server) release() { <-s.sem }

// resolveAndWrite asks via, or the upstreams if via is nil, and writes the
// answer, or SERVFAIL. Only the upstreams' answers are cached: a publisher's
// come with routes whose lifetime the agent manages.
func (s *Server) resolveAndWrite(w dns.ResponseWriter, req *dns.Msg, via Upstream) {
	var (
		raw  []byte
		resp *dns.Msg
		err  error
	)
	if via != nil {
		raw, resp, err = s.resolveVia(via, req)
	} else {
		raw, resp, err = s.resolve(req)
	}
	if err != nil {
		s.counter.servFail.Add(1)
		if s.upLog.allow() {
			s.log.Warn("no upstream answered", zap.String("qname", req.Question[0].Name), zap.Error(err))
		}
		w.WriteMsg(errorReply(req, dns.RcodeServerFailure))
		return
	}
	if via != nil {
		s.counter.delegated.Add(1)
	} else {
		s.counter.forwarded.Add(1)
		if s.cache != nil {
			s.cache.put(req, resp, time.Now())
		}
	}
	if len(raw) <= clientMaxSize(w, req) {
		w.Write(raw) // byte for byte what the upstream sent, with the client's ID
		return
	}
	writeSized(w, resp, clientMaxSize(w, req))
}

// writeSized writes resp, truncated (TC set) if it does not fit the client's
// UDP buffer, so that the client retries over TCP.
func writeSized(w dns.ResponseWriter, resp *dns.Msg, maxSize int) {
	resp.Compress = true
	if resp.Len() > maxSize {
		resp.Truncate(maxSize)
	}
	w.WriteMsg(resp)
}

// clientMaxSize is the largest answer the client accepts: its EDNS0 buffer
// size (at least 512) over UDP, 64 KiB over TCP.
func clientMaxSize(w dns.ResponseWriter, req *dns.Msg) int {
	if _, udp := w.RemoteAddr().(*net.UDPAddr); !udp {
		return dns.MaxMsgSize
	}
	if opt := req.IsEdns0(); opt != nil && opt.UDPSize() > dns.MinMsgSize {
		return int(opt.UDPSize())
	}
	return dns.MinMsgSize
}

// resolve sends req to the upstreams until one answers with something other
// than SERVFAIL or REFUSED, and returns that answer as received (raw) and
// parsed, both carrying req's ID. Upstreams are tried in order, except that
// those that recently failed to answer at all are tried last (see
// upstreamSet). If every upstream answers SERVFAIL or REFUSED, the last such
// answer is returned; if none answers, an error.
func (s *Server) resolve(req *dns.Msg) ([]byte, *dns.Msg, error) {
	ups := s.upstreams.Load()
	if len(ups.addrs) == 0 {
		return nil, nil, errors.New("no upstream resolvers configured")
	}
	// The upstream sees a fresh random ID, so that a client's predictable IDs
	// do not make our upstream queries easier to spoof.
	clientID := req.Id
	req.Id = dns.Id()
	query, err := req.Pack()
	upID := req.Id
	req.Id = clientID
	if err != nil {
		return nil, nil, fmt.Errorf("packing query: %w", err)
	}
	var (
		lastRaw  []byte
		lastResp *dns.Msg
		errs     []error
	)
	now := time.Now()
	for pass := range 2 { // healthy upstreams first, then the others
		for i, up := range ups.addrs {
			if ups.down(i, now) != (pass == 1) {
				continue
			}
			raw, resp, err := s.exchange(up, query, upID, req.Question[0])
			if err != nil {
				if s.ctx.Err() != nil {
					return nil, nil, s.ctx.Err()
				}
				s.counter.upstreamErrors.Add(1)
				ups.markDown(i, time.Now())
				errs = append(errs, fmt.Errorf("%v: %w", up, err))
				continue
			}
			ups.markUp(i)
			binary.BigEndian.PutUint16(raw, clientID)
			resp.Id = clientID
			lastRaw, lastResp = raw, resp
			if resp.Rcode != dns.RcodeServerFailure && resp.Rcode != dns.RcodeRefused {
				return raw, resp, nil
			}
		}
	}
	if lastResp != nil {
		return lastRaw, lastResp, nil
	}
	return nil, nil, errors.Join(errs...)
}

// resolveVia sends req to a policy's Upstream (publisher DNS).
func (s *Server) resolveVia(u Upstream, req *dns.Msg) ([]byte, *dns.Msg, error) {
	clientID := req.Id
	req.Id = 0 // RFC 8484 4.1: ID 0 over DoH
	query, err := req.Pack()
	req.Id = clientID
	if err != nil {
		return nil, nil, fmt.Errorf("packing query: %w", err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	raw, err := u.Exchange(ctx, query)
	if err != nil {
		s.counter.upstreamErrors.Add(1)
		return nil, nil, fmt.Errorf("publisher DNS: %w", err)
	}
	resp, err := parseResponse(raw, 0, req.Question[0])
	if err != nil {
		s.counter.upstreamErrors.Add(1)
		return nil, nil, fmt.Errorf("publisher DNS: %w", err)
	}
	binary.BigEndian.PutUint16(raw, clientID)
	resp.Id = clientID
	return raw, resp, nil
}

// downFor is how long an upstream that did not answer is tried only after the
// others. It keeps a dead first nameserver from adding a timeout to every
// query, and lets it back in first place soon after it recovers.
const downFor = 30 * time.Second

// upstreamSet is one immutable list of upstreams with the health learnt about
// them, swapped whole by SetUpstreams.
type upstreamSet struct {
	addrs     []netip.AddrPort
	downUntil []atomic.Int64 // unix nanoseconds; 0 when healthy
}

func newUpstreamSet(addrs []netip.AddrPort) *upstreamSet {
	return &upstreamSet{addrs: addrs, downUntil: make([]atomic.Int64, len(addrs))}
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

// exchange asks one upstream over UDP, and again over TCP if the UDP answer is
// truncated.
func (s *Server) exchange(up netip.AddrPort, query []byte, id uint16, q dns.Question) ([]byte, *dns.Msg, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	raw, resp, err := exchangeUDP(ctx, up, query, id, q)
	if err != nil {
		return nil, nil, err
	}
	if !resp.Truncated {
		return raw, resp, nil
	}
	return exchangeTCP(ctx, up, query, id, q)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, dns.MaxMsgSize); return &b }}

func exchangeUDP(ctx context.Context, up netip.AddrPort, query []byte, id uint16, q dns.Question) ([]byte, *dns.Msg, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", up.String())
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	stop := bindDeadline(ctx, conn)
	defer stop()
	if _, err := conn.Write(query); err != nil {
		return nil, nil, err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	// The socket is connected, so only the upstream's packets arrive; still,
	// anything that is not the answer to this question is skipped, not
	// believed.
	for {
		n, err := conn.Read(*bp)
		if err != nil {
			return nil, nil, err
		}
		resp, err := parseResponse((*bp)[:n], id, q)
		if errors.Is(err, errMismatch) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return append([]byte(nil), (*bp)[:n]...), resp, nil
	}
}

func exchangeTCP(ctx context.Context, up netip.AddrPort, query []byte, id uint16, q dns.Question) ([]byte, *dns.Msg, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", up.String())
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	stop := bindDeadline(ctx, conn)
	defer stop()
	msg := make([]byte, 2+len(query))
	binary.BigEndian.PutUint16(msg, uint16(len(query)))
	copy(msg[2:], query)
	if _, err := conn.Write(msg); err != nil {
		return nil, nil, err
	}
	var lenBuf [2]byte
	if _, err := io.ReadFull(conn, lenBuf[:]); err != nil {
		return nil, nil, err
	}
	raw := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
	if _, err := io.ReadFull(conn, raw); err != nil {
		return nil, nil, err
	}
	resp, err := parseResponse(raw, id, q)
	if err != nil {
		return nil, nil, err
	}
	return raw, resp, nil
}

// bindDeadline applies ctx's deadline to conn and unblocks conn's I/O when ctx
// is cancelled early (by Close).
func bindDeadline(ctx context.Context, conn net.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

// parseResponse checks that raw answers question q with ID id and parses it.
func parseResponse(raw []byte, id uint16, q dns.Question) (*dns.Msg, error) {
	if len(raw) < 12 || binary.BigEndian.Uint16(raw) != id || raw[2]&0x80 == 0 {
		return nil, errMismatch
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(raw); err != nil {
		return nil, fmt.Errorf("malformed response: %w", err)
	}
	// A FORMERR or NOTIMP answer may legitimately omit the question.
	if len(resp.Question) == 0 && resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return resp, nil
	}
	if len(resp.Question) != 1 {
		return nil, errMismatch
	}
	rq := resp.Question[0]
	if rq.Qtype != q.Qtype || rq.Qclass != q.Qclass || !strings.EqualFold(rq.Name, q.Name) {
		return nil, errMismatch
	}
	return resp, nil
}
