package l7

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Addr is the remote address of a tunnelled flow: the target as the application
// named it, which the agent may never resolve.
type Addr struct{ Target Target }

// Network returns "l7".
func (Addr) Network() string { return "l7" }

func (a Addr) String() string {
	if a.Target.Host == "" {
		return ""
	}
	return a.Target.Authority()
}

// streamConn is the agent's view of one CONNECT stream as a net.Conn. An idle
// one holds no buffer (see Stream), and it can wait for data without one
// (WaitRead, for flowio.Copy).
//
// Deadlines are not supported; callers end a flow with Close.
type streamConn struct {
	s             *Stream
	local, remote net.Addr
	onClose       func()

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ interface {
	net.Conn
	CloseWrite() error
	WaitRead() error
	WriteBufferedTo(io.Writer) (int, error, error)
} = (*streamConn)(nil)

func (c *streamConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return c.s.Read(p)
}

func (c *streamConn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return c.s.Write(p)
}

// WriteBufferedTo writes what the stream received to w (flowio.BufferedReader).
func (c *streamConn) WriteBufferedTo(w io.Writer) (int, error, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed, nil
	}
	return c.s.WriteBufferedTo(w)
}

// WaitRead returns once a Read would not block.
func (c *streamConn) WaitRead() error { return c.s.WaitRead() }

// CloseWrite ends the flow's upstream direction: the PoP and the publisher see
// END_STREAM and the publisher half-closes its TCP connection to the target.
func (c *streamConn) CloseWrite() error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	return c.s.CloseWrite()
}

// Close resets the stream if it has not ended cleanly in both directions.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.s.Close()
		c.onClose()
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

// Deadlines fail with os.ErrNoDeadline, as os.File does on files without them.
func (c *streamConn) SetDeadline(time.Time) error      { return os.ErrNoDeadline }
func (c *streamConn) SetReadDeadline(time.Time) error  { return os.ErrNoDeadline }
func (c *streamConn) SetWriteDeadline(time.Time) error { return os.ErrNoDeadline }
