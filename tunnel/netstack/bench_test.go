package netstack

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// memConn is an in-memory upstream: writes are counted and discarded. A
// source returns `remaining` zero bytes and then EOF; a sink's reads block
// until the relay half-closes it. It keeps the benchmark about the bridge,
// not about a loopback socket.
type memConn struct {
	source    bool
	remaining atomic.Int64
	written   atomic.Int64
	eof       chan struct{}
	once      sync.Once
}

func newMemConn(source int64) *memConn {
	c := &memConn{eof: make(chan struct{}), source: source > 0}
	c.remaining.Store(source)
	return c
}

func (c *memConn) Read(p []byte) (int, error) {
	r := c.remaining.Load()
	if r == 0 {
		if c.source {
			return 0, io.EOF
		}
		<-c.eof
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r))
	c.remaining.Add(-int64(n))
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error)      { c.written.Add(int64(len(p))); return len(p), nil }
func (c *memConn) CloseWrite() error                { c.once.Do(func() { close(c.eof) }); return nil }
func (c *memConn) Close() error                     { return c.CloseWrite() }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

const benchChunk = 64 << 10

// BenchmarkTCP measures one TCP stream through client stack → channel TUN
// → Stack → handler → in-memory upstream, in each direction, with and
// without GSO. Both gVisor stacks run in this process, so the figure is a
// lower bound for the bridge alone.
func BenchmarkTCP(b *testing.B) {
	for _, gso := range []bool{true, false} {
		name := map[bool]string{true: "gso", false: "nogso"}[gso]
		b.Run("upload/"+name, func(b *testing.B) { benchTCP(b, gso, true) })
		b.Run("download/"+name, func(b *testing.B) { benchTCP(b, gso, false) })
	}
}

func benchTCP(b *testing.B, gso, upload bool) {
	defer func(old bool) { enableGSO = old }(enableGSO)
	enableGSO = gso
	total := int64(b.N) * benchChunk
	var up *memConn
	if upload {
		up = newMemConn(0)
	} else {
		up = newMemConn(total)
	}
	h := newHarness(b, Config{Log: zap.NewNop(), TCP: func(context.Context, Flow) (net.Conn, error) { return up, nil }})
	c, err := h.dialTCP(context.Background(), stubDst)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	b.ResetTimer()
	if upload {
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.CloseWrite()
		io.Copy(io.Discard, c) // returns once the upstream saw EOF: all bytes relayed
		if got := up.written.Load(); got != total {
			b.Fatalf("upstream received %d bytes, want %d", got, total)
		}
	} else {
		n, err := io.CopyBuffer(io.Discard, c, buf)
		if err != nil || n != total {
			b.Fatalf("client received %d bytes (%v), want %d", n, err, total)
		}
	}
	b.StopTimer()
	st := h.st.ip.Stats().TCP
	ct := h.client.Stats().TCP
	b.ReportMetric(float64(st.Retransmits.Value()+ct.Retransmits.Value())/float64(b.N), "retx/op")
	b.ReportMetric(float64(st.Timeouts.Value()+ct.Timeouts.Value())/float64(b.N), "rto/op")
	h.close()
}
