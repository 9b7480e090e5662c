package l3e

import (
	"net"
	"os"
	"sync"
	"time"
)

// feedQueue is how many datagrams wait for pion before more are dropped:
// handshake flights and the odd alert, never the data path.
const feedQueue = 64

// FeedConn is the socket as pion's dtls.Conn sees it once our record layer
// reads the real one: Feed hands it the datagrams that are not ours
// (handshake, its retransmissions, alerts, records of pion's sequence
// numbers), Write sends on the real socket, and Close ends pion's reads
// without closing the real socket, which its owner closes.
type FeedConn struct {
	local, remote net.Addr
	write         func([]byte) (int, error)
	in            chan []byte
	closed        chan struct{}
	closeOnce     sync.Once

	mu       sync.Mutex    // guards the read deadline
	deadline chan struct{} // closed when the deadline passes
	gen      uint64        // counts deadline changes: a stale timer does nothing
	timer    *time.Timer
}

// NewFeedConn returns a FeedConn between local and remote writing with write.
func NewFeedConn(local, remote net.Addr, write func([]byte) (int, error)) *FeedConn {
	return &FeedConn{local: local, remote: remote, write: write, in: make(chan []byte, feedQueue),
		closed: make(chan struct{}), deadline: make(chan struct{})}
}

// Feed queues a copy of datagram d for pion; false when the queue is full
// or the conn closed (d is dropped: DTLS retransmits what matters).
func (f *FeedConn) Feed(d []byte) bool {
	select {
	case <-f.closed:
		return false
	default:
	}
	select {
	case f.in <- append([]byte(nil), d...):
		return true
	default:
		return false
	}
}

// Read returns the next datagram fed.
func (f *FeedConn) Read(p []byte) (int, error) {
	f.mu.Lock()
	dl := f.deadline
	f.mu.Unlock()
	select {
	case d := <-f.in:
		return copy(p, d), nil
	case <-f.closed:
		return 0, net.ErrClosed
	case <-dl:
		return 0, os.ErrDeadlineExceeded
	}
}

// Write sends p on the real socket.
func (f *FeedConn) Write(p []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	return f.write(p)
}

// Close ends reads; the real socket stays open.
func (f *FeedConn) Close() error {
	f.closeOnce.Do(func() {
		close(f.closed)
		f.SetReadDeadline(time.Time{})
	})
	return nil
}

func (f *FeedConn) LocalAddr() net.Addr  { return f.local }
func (f *FeedConn) RemoteAddr() net.Addr { return f.remote }

// SetDeadline sets the read deadline; writes do not block.
func (f *FeedConn) SetDeadline(t time.Time) error { return f.SetReadDeadline(t) }

// SetReadDeadline makes a Read waiting past t return a timeout error.
func (f *FeedConn) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	select {
	case <-f.deadline: // passed: a new one
		f.deadline = make(chan struct{})
	default:
	}
	switch d := time.Until(t); {
	case t.IsZero():
	case d <= 0:
		close(f.deadline)
	default:
		gen := f.gen
		f.timer = time.AfterFunc(d, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.gen == gen {
				close(f.deadline)
			}
		})
	}
	return nil
}

// SetWriteDeadline is accepted and ignored: UDP writes do not block.
func (f *FeedConn) SetWriteDeadline(time.Time) error { return nil }
