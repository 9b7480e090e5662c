package dnsproxy

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"time"

	"go.uber.org/zap"
)

// UDP is served by our own loop rather than miekg's server, which starts a
// goroutine and builds a dns.Msg for every packet: reader goroutines take
// queries from the socket in batches (udp_linux.go), answer private names and
// cached forwarded names on the fast path (wire.go) with no per-query
// goroutine and no allocation, handle other local answers inline (serve.go),
// hand each query that must go upstream to a goroutine of its own, bounded by
// MaxInFlight, and send the batch's fast-path replies together.

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
	names := newNameCache()
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
			b := p.buf[:p.n]
			var (
				f        *forwarding
				bypassed bool
			)
			p.reply, f, bypassed = s.fastAnswer(b, p.out[:0], p.from, names)
			switch {
			case p.reply != nil:
			case f != nil:
				s.forwardUDP(conn, p.from, f)
			default:
				s.serveUDPSlow(conn, b, p.from, bypassed)
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

// serveUDPSlow answers, inline, what the fast path does not, and hands
// queries that must go upstream to forwardUDP.
func (s *Server) serveUDPSlow(conn *net.UDPConn, b []byte, from netip.AddrPort, bypassed bool) {
	reply, f := s.handle(b, from, false, bypassed)
	switch {
	case reply != nil:
		conn.WriteToUDPAddrPort(reply, from)
	case f != nil:
		s.forwardUDP(conn, from, f)
	}
}
