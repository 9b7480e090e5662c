package dnsproxy

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// UDP is served by our own loop rather than miekg's server, which starts a
// goroutine and builds a dns.Msg for every packet: a few reader goroutines per
// socket answer private names and cached forwarded names on the fast path
// (wire.go) with no per-query goroutine and a single allocation, handle other
// local answers inline, and hand each query that must go upstream to a
// goroutine of its own, bounded by MaxInFlight. TCP, where queries are rare and
// connection handling is the hard part, stays with miekg's server.

// serveUDP starts the reader goroutines of conn; they exit when conn is closed.
func (s *Server) serveUDP(conn *net.UDPConn) {
	for range max(2, runtime.GOMAXPROCS(0)) {
		s.wg.Add(1)
		go s.udpReader(conn)
	}
}

func (s *Server) udpReader(conn *net.UDPConn) {
	defer s.wg.Done()
	buf := make([]byte, readBufSize)
	out := make([]byte, 0, readBufSize) // room for most cached answers
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			if s.upLog.allow() {
				s.log.Warn("reading a DNS query", zap.Error(err))
			}
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		s.counter.queries.Add(1)
		resp, bypassed := s.fastAnswer(buf[:n], out[:0], from)
		if resp != nil {
			conn.WriteToUDPAddrPort(resp, from)
			continue
		}
		s.serveUDPSlow(conn, buf[:n], from, bypassed)
	}
}

// serveUDPSlow handles what the fast path does not: the same checks as
// miekg's server (drop responses and runts, FORMERR or NOTIMP what cannot be
// a query), then local answers inline (unless the client bypasses the agent)
// and forwarding in its own goroutine.
func (s *Server) serveUDPSlow(conn *net.UDPConn, b []byte, from netip.AddrPort, bypassed bool) {
	w := &udpWriter{conn: conn, to: from}
	if len(b) < headerLen {
		s.counter.malformed.Add(1)
		return // answering garbage would make us an amplifier
	}
	h := dns.Header{
		Id: binary.BigEndian.Uint16(b), Bits: binary.BigEndian.Uint16(b[2:]),
		Qdcount: binary.BigEndian.Uint16(b[4:]), Ancount: binary.BigEndian.Uint16(b[6:]),
		Nscount: binary.BigEndian.Uint16(b[8:]), Arcount: binary.BigEndian.Uint16(b[10:]),
	}
	action := acceptQuery(h)
	req := new(dns.Msg)
	if action == dns.MsgAccept && req.Unpack(b) != nil {
		action = dns.MsgReject
	}
	switch action {
	case dns.MsgIgnore:
		s.counter.malformed.Add(1)
		return
	case dns.MsgReject, dns.MsgRejectNotImplemented:
		s.counter.malformed.Add(1)
		w.WriteMsg(headerReply(h, action))
		return
	}
	var (
		resp *dns.Msg
		via  Upstream
	)
	if !bypassed {
		resp, via = s.answerLocal(req, from)
	}
	if resp != nil {
		w.WriteMsg(resp)
		return
	}
	if (via == nil && s.answerFromCache(w, req)) || !s.acquire(w, req) {
		return
	}
	// Copying is not needed: req was unpacked into fresh memory.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.release()
		s.resolveAndWrite(w, req, via)
	}()
}

// headerReply answers a query that could not be parsed or accepted: FORMERR
// (or NOTIMP for an unsupported opcode) with the query's ID, opcode and RD.
func headerReply(h dns.Header, action dns.MsgAcceptAction) *dns.Msg {
	m := new(dns.Msg)
	m.Id = h.Id
	m.Response = true
	m.Opcode = int(h.Bits>>opcodeShift) & 0xF
	m.RecursionDesired = h.Bits&flagRD != 0
	m.Rcode = dns.RcodeFormatError
	if action == dns.MsgRejectNotImplemented {
		m.Rcode = dns.RcodeNotImplemented
	}
	return m
}

// udpWriter is the dns.ResponseWriter of one UDP query.
type udpWriter struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.to) }
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.conn.WriteToUDPAddrPort(b, w.to)
	return err
}
func (w *udpWriter) Write(b []byte) (int, error) { return w.conn.WriteToUDPAddrPort(b, w.to) }
func (w *udpWriter) Close() error                { return nil }
func (w *udpWriter) TsigStatus() error           { return nil }
func (w *udpWriter) TsigTimersOnly(bool)         {}
func (w *udpWriter) Hijack()                     {}
