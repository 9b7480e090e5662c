package l3e

import (
	"net"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Sizes of the client's socket batches.
const (
	// sockBatch is the most datagrams one recvmmsg or sendmmsg moves.
	sockBatch = 32
	// datagramSize is the largest datagram read: pion reads no larger one.
	datagramSize = 8192
	// SocketBuffer is the receive and send buffer both ends ask for (the
	// kernel caps it at net.core.rmem_max and wmem_max): with the default
	// 208 KiB a burst of a fast sender overflows it while pion decrypts,
	// and TCP inside backs off at every loss.
	SocketBuffer = 4 << 20
)

// batchRW is ipv4.PacketConn or ipv6.PacketConn (their Message is the same
// type): recvmmsg and sendmmsg on Linux, one datagram a call elsewhere.
type batchRW interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// BatchConn is the client's connected UDP socket as pion sees it. Read hands
// out the datagrams of one recvmmsg one at a time; between Hold and Flush,
// Write queues the records for one sendmmsg instead of a system call each (the
// TUN reader holds for each batch it reads). Deadlines are the socket's, so
// pion's read deadlines work as before.
type BatchConn struct {
	net.Conn
	pc batchRW

	rmu        sync.Mutex // guards the read batch
	rmsgs      []ipv4.Message
	next, have int

	wmu     sync.Mutex // guards the write queue
	holding bool
	wmsgs   []ipv4.Message
	queued  int
}

// NewBatchConn wraps c, a connected *net.UDPConn; another net.Conn is
// returned as it is.
func NewBatchConn(c net.Conn) net.Conn {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return c
	}
	u.SetReadBuffer(SocketBuffer) // best effort: capped by the system
	u.SetWriteBuffer(SocketBuffer)
	b := &BatchConn{Conn: c, rmsgs: make([]ipv4.Message, sockBatch), wmsgs: make([]ipv4.Message, sockBatch)}
	if a, ok := u.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		b.pc = ipv6.NewPacketConn(u)
	} else {
		b.pc = ipv4.NewPacketConn(u)
	}
	for i := range b.rmsgs {
		b.rmsgs[i].Buffers = [][]byte{make([]byte, datagramSize)}
		b.wmsgs[i].Buffers = [][]byte{nil}
	}
	return b
}

// Read returns the next datagram, reading a new batch when the last is spent.
func (b *BatchConn) Read(p []byte) (int, error) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if b.next == b.have {
		n, err := b.pc.ReadBatch(b.rmsgs, 0)
		if err != nil {
			return 0, err
		}
		b.next, b.have = 0, n
	}
	m := &b.rmsgs[b.next]
	b.next++
	return copy(p, m.Buffers[0][:m.N]), nil
}

// Write sends p, or queues a copy of it while held.
func (b *BatchConn) Write(p []byte) (int, error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if !b.holding {
		return b.Conn.Write(p)
	}
	if b.queued == len(b.wmsgs) {
		if err := b.flush(); err != nil {
			return 0, err
		}
	}
	m := &b.wmsgs[b.queued]
	m.Buffers[0] = append(m.Buffers[0][:0], p...)
	b.queued++
	return len(p), nil
}

// Hold makes writes queue until Flush.
func (b *BatchConn) Hold() {
	b.wmu.Lock()
	b.holding = true
	b.wmu.Unlock()
}

// Flush sends what is queued and ends the hold.
func (b *BatchConn) Flush() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.holding = false
	return b.flush()
}

func (b *BatchConn) flush() error {
	defer func() { b.queued = 0 }()
	for sent := 0; sent < b.queued; {
		n, err := b.pc.WriteBatch(b.wmsgs[sent:b.queued], 0)
		if err != nil {
			return err
		}
		sent += n
	}
	return nil
}

// Close sends what is queued (pion's bye and close_notify may be among it)
// and closes the socket.
func (b *BatchConn) Close() error {
	b.Flush()
	return b.Conn.Close()
}
