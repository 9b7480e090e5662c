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
// goroutine and builds a dns.Msg for every packet: reader goroutines take
// queries from the socket in batches (udp_linux.go), answer private names and
// cached forwarded names on the fast path (wire.go) with no per-query
// goroutine and a single allocation, handle other local answers inline, hand
// each query that must go upstream to a goroutine of its own, bounded by
// MaxInFlight, and send the batch's fast-path replies together. TCP, where
// queries are rare and connection handling is the hard part, stays with
// miekg's server.

// serveUDP starts the reader goroutines of conn; they exit when conn is closed.
func (s *Server) serveUDP(conn *net.UDPConn) {
	bio := newBatchIO(conn)
	for i := range udpReaders(bio) {
		if i > 0 {
			bio = newBatchIO(conn)
		}
		s.wg.Add(1)
		go s.udpReader(conn, bio)
	}
}

// udpReaders is the number of reader goroutines per socket. Readers of one
// socket queue behind one another for it, and each hand-over costs the
// scheduler more than answering a query: with batch I/O one reader needs the
// least CPU per query and answers the most (profiled with dnsperf), while one
// query per read needs a few readers to keep up. The Policy and Bypass are
// called on the reader: while one of them blocks, the socket is not read.
func udpReaders(bio batchIO) int {
	if bio.size() > 1 {
		return 1
	}
	return max(2, runtime.GOMAXPROCS(0))
}

// udpBatch is the most queries one reader takes from its socket at once.
const udpBatch = 16

// udpPacket is one query of a batch and its fast-path reply.
type udpPacket struct {
	buf   []byte // readBufSize
	n     int
	from  netip.AddrPort
	out   []byte // room for the reply; reply may have outgrown it
	reply []byte // nil if the query was not answered on the fast path
}

// batchIO reads queries and writes fast-path replies, as many at a time as
// the system allows (udp_linux.go), or one by one (singleIO).
type batchIO interface {
	size() int
	// read blocks until at least one query arrives and fills pkts[:n]
	// (buf, n, from) with those waiting.
	read(pkts []udpPacket) (n int, err error)
	// write sends each packet's reply, if any, to its source.
	write(pkts []udpPacket)
}

func (s *Server) udpReader(conn *net.UDPConn, bio batchIO) {
	defer s.wg.Done()
	pkts := make([]udpPacket, bio.size())
	for i := range pkts {
		pkts[i].buf = make([]byte, readBufSize)
		pkts[i].out = make([]byte, 0, localUDPSize) // room for most cached answers
	}
	for {
		n, err := bio.read(pkts)
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
		s.counter.queries.Add(uint64(n))
		for i := range pkts[:n] {
			p := &pkts[i]
			var bypassed bool
			p.reply, bypassed = s.fastAnswer(p.buf[:p.n], p.out[:0], p.from)
			if p.reply == nil {
				s.serveUDPSlow(conn, p.buf[:p.n], p.from, bypassed)
			}
		}
		bio.write(pkts[:n])
	}
}

// singleIO is the portable batchIO: one query per system call.
type singleIO struct{ conn *net.UDPConn }

func (*singleIO) size() int { return 1 }

func (b *singleIO) read(pkts []udpPacket) (int, error) {
	n, from, err := b.conn.ReadFromUDPAddrPort(pkts[0].buf)
	if err != nil {
		return 0, err
	}
	pkts[0].n, pkts[0].from = n, from
	return 1, nil
}

func (b *singleIO) write(pkts []udpPacket) {
	for i := range pkts {
		if p := &pkts[i]; len(p.reply) > 0 {
			b.conn.WriteToUDPAddrPort(p.reply, p.from)
		}
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
