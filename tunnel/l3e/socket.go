package l3e

import (
	"net"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Sizes of the socket batches.
const (
	// SockBatch is the most datagrams one recvmmsg or sendmmsg moves.
	SockBatch = 32
	// DatagramSize is the largest datagram read: a record of the largest
	// MTU a template may push (9000) and pion's handshake flights fit.
	DatagramSize = 1 << 14
	// SocketBuffer is the receive and send buffer both ends ask for (the
	// kernel caps it at net.core.rmem_max and wmem_max): with the default
	// 208 KiB a burst of a fast sender overflows it while the receiver
	// decrypts, and TCP inside backs off at every loss.
	SocketBuffer = 4 << 20
)

// Message is one datagram of a batch (the same type for IPv4 and IPv6).
type Message = ipv4.Message

// batchRW is ipv4.PacketConn or ipv6.PacketConn: recvmmsg and sendmmsg on
// Linux, one datagram a call elsewhere.
type batchRW interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// Socket is a UDP socket read and written in batches: the client's
// connected one, the gateway's listening one. Another net.Conn (a test's,
// a platform's) is read and written one datagram per call.
type Socket struct {
	conn net.Conn
	pc   batchRW // nil: not a *net.UDPConn
	// gso: the kernel takes several records of one size to one address in
	// one buffer and segments them (UDP GSO): one trip down the stack for
	// the lot. Cleared when the path refuses it.
	gso atomic.Bool
	// gro: the kernel hands a run of one peer's datagrams over in one
	// buffer (UDP GRO); ReadBatch's callers cut it (Segments).
	gro bool
}

// NewSocket wraps c and asks for SocketBuffer buffers.
func NewSocket(c net.Conn) *Socket {
	s := &Socket{conn: c}
	u, ok := c.(*net.UDPConn)
	if !ok {
		return s
	}
	u.SetReadBuffer(SocketBuffer) // best effort: capped by the system
	u.SetWriteBuffer(SocketBuffer)
	if a, ok := u.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		s.pc = ipv6.NewPacketConn(u)
	} else {
		s.pc = ipv4.NewPacketConn(u)
	}
	s.gso.Store(gsoSupported(u))
	s.gro = groEnable(u)
	return s
}

// Conn is the socket as a net.Conn.
func (s *Socket) Conn() net.Conn { return s.conn }

// NewMessages returns n messages to read into: buffers for a datagram of
// DatagramSize, or for a coalesced run when the socket receives with GRO.
func (s *Socket) NewMessages(n int) []Message {
	size := DatagramSize
	if s.gro {
		size = 1 << 16
	}
	ms := make([]Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, size)}
		if s.gro {
			ms[i].OOB = make([]byte, 64)
		}
	}
	return ms
}

// Segments calls fn with each datagram m holds (several when the kernel
// coalesced them): the datagram is buf[off:end], the room before it free
// and buf the message's whole buffer.
func (s *Socket) Segments(m *Message, fn func(buf []byte, off, end int)) {
	buf := m.Buffers[0]
	size := m.N
	if s.gro && m.NN > 0 {
		if g := groSize(m.OOB[:m.NN]); g > 0 {
			size = g
		}
	}
	for off := 0; off < m.N; off += size {
		fn(buf, off, min(off+size, m.N))
	}
}

// ReadBatch reads datagrams into ms (each with one buffer): their lengths
// in N and, on an unconnected socket, their sources in Addr.
func (s *Socket) ReadBatch(ms []Message) (int, error) {
	if s.pc != nil {
		return s.pc.ReadBatch(ms, 0)
	}
	n, err := s.conn.Read(ms[0].Buffers[0])
	if err != nil {
		return 0, err
	}
	ms[0].N, ms[0].Addr = n, nil
	return 1, nil
}

// WriteBatch sends all of ms (each with one buffer; Addr set on an
// unconnected socket), in as few system calls as the kernel allows.
func (s *Socket) WriteBatch(ms []Message) error {
	if s.pc == nil {
		for i := range ms {
			if _, err := s.conn.Write(ms[i].Buffers[0]); err != nil {
				return err
			}
		}
		return nil
	}
	for sent := 0; sent < len(ms); {
		n, err := s.pc.WriteBatch(ms[sent:], 0)
		if err != nil {
			return err
		}
		sent += n
	}
	return nil
}

// WriteTo sends the datagram b to to, or to the connected peer when to is
// nil.
func (s *Socket) WriteTo(b []byte, to net.Addr) error {
	var err error
	if pc, ok := s.conn.(net.PacketConn); ok && to != nil {
		_, err = pc.WriteTo(b, to)
	} else {
		_, err = s.conn.Write(b)
	}
	return err
}

// Close closes the socket, which ends a ReadBatch in progress.
func (s *Socket) Close() error { return s.conn.Close() }

// Limits of one GSO message (the kernel's UDP_MAX_SEGMENTS, and an IPv4
// datagram's payload with room to spare).
const (
	gsoSegments = 64
	gsoBytes    = 65000
)

// SendQueue collects records for one WriteBatch. It refers to the records'
// buffers, which must stay as they are until Flush. One goroutine uses it.
type SendQueue struct {
	ms []Message
	n  int
	// dropped (if not nil) counts the records a failed send lost.
	dropped *atomic.Uint64
	// out are the coalesced messages of a Flush on a GSO socket, bufs
	// their buffers (allocated when first needed).
	out  []Message
	bufs [][]byte
}

// NewSendQueue holds up to SockBatch records; the records of a send that
// fails are counted on dropped (if not nil).
func NewSendQueue(dropped *atomic.Uint64) *SendQueue {
	q := &SendQueue{ms: make([]Message, SockBatch), dropped: dropped,
		out: make([]Message, SockBatch), bufs: make([][]byte, SockBatch)}
	for i := range q.ms {
		q.ms[i].Buffers = [][]byte{nil}
		q.out[i].Buffers = [][]byte{nil}
	}
	return q
}

// Add queues rec for to (nil on a connected socket), sending the queue
// first on s when it is full (the error is that send's).
func (q *SendQueue) Add(s *Socket, rec []byte, to net.Addr) error {
	var err error
	if q.n == len(q.ms) {
		err = q.Flush(s)
	}
	q.ms[q.n].Buffers[0], q.ms[q.n].Addr = rec, to
	q.n++
	return err
}

// Len is how many records wait.
func (q *SendQueue) Len() int { return q.n }

// Flush sends what is queued on s; when that fails, the records are
// counted as dropped.
func (q *SendQueue) Flush(s *Socket) error {
	if q.n == 0 {
		return nil
	}
	var err error
	if q.n > 1 && s.gso.Load() {
		err = s.WriteBatch(q.out[:q.coalesce()])
		if err != nil && gsoRefused(err) {
			s.gso.Store(false)
			err = s.WriteBatch(q.ms[:q.n])
		}
	} else {
		err = s.WriteBatch(q.ms[:q.n])
	}
	if err != nil && q.dropped != nil {
		q.dropped.Add(uint64(q.n))
	}
	for i := range q.ms[:q.n] {
		q.ms[i].Buffers[0], q.ms[i].Addr = nil, nil
		q.out[i].Buffers[0], q.out[i].Addr = nil, nil
	}
	q.n = 0
	return err
}

// coalesce joins runs of queued records to one address into q.out: all of
// a run but its last of the same size, the last no larger (the kernel cuts
// the buffer at that size). It returns how many messages it made.
func (q *SendQueue) coalesce() int {
	k, size, count, ended := -1, 0, 0, false
	for i := range q.ms[:q.n] {
		rec, to := q.ms[i].Buffers[0], q.ms[i].Addr
		if k >= 0 && to == q.out[k].Addr && len(rec) <= size && !ended && count < gsoSegments &&
			len(q.out[k].Buffers[0])+len(rec) <= gsoBytes {
			if count == 1 { // the run's first record, copied now that there is a run
				q.out[k].Buffers[0] = append(q.buf(k), q.out[k].Buffers[0]...)
			}
			q.out[k].Buffers[0] = append(q.out[k].Buffers[0], rec...)
			count++
			ended = len(rec) < size
			continue
		}
		q.segment(k, size, count)
		k++
		q.out[k].Buffers[0], q.out[k].Addr = rec, to
		size, count, ended = len(rec), 1, false
	}
	q.segment(k, size, count)
	return k + 1
}

// buf is the empty buffer of out message k.
func (q *SendQueue) buf(k int) []byte {
	if q.bufs[k] == nil {
		q.bufs[k] = make([]byte, 0, gsoBytes)
	}
	return q.bufs[k][:0]
}

// segment sets the GSO segment size of out message k when it holds a run.
func (q *SendQueue) segment(k, size, count int) {
	switch {
	case k < 0:
	case count > 1:
		q.out[k].OOB = gsoControl(q.out[k].OOB, size)
	default:
		q.out[k].OOB = q.out[k].OOB[:0]
	}
}
