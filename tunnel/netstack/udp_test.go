package netstack

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// udpEcho is a loopback UDP echo server; the handler returns a connected
// socket to it and records what it returned.
type udpEcho struct {
	pc     net.PacketConn
	closed atomic.Int32
}

func newUDPEcho(t *testing.T) *udpEcho {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], addr)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return &udpEcho{pc: pc}
}

type closeCounted struct {
	*net.UDPConn
	n *atomic.Int32
}

func (c closeCounted) Close() error { c.n.Add(1); return c.UDPConn.Close() }

func (e *udpEcho) handler(ctx context.Context, f Flow) (DatagramConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", e.pc.LocalAddr().String())
	if err != nil {
		return nil, err
	}
	return closeCounted{c.(*net.UDPConn), &e.closed}, nil
}

func TestUDPEcho(t *testing.T) {
	e := newUDPEcho(t)
	h := newHarness(t, Config{TCP: refuseAll, UDP: e.handler})
	for _, dst := range []netip.AddrPort{netip.MustParseAddrPort("100.64.0.9:53"), netip.MustParseAddrPort("[fd7a::53]:53")} {
		c, err := h.dialUDP(dst)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2000)
		for i, msg := range []string{"query-1", "query-2", string(bytes.Repeat([]byte("x"), 1200))} {
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%v datagram %d: %v", dst, i, err)
			}
			if string(buf[:n]) != msg {
				t.Fatalf("%v datagram %d echoed %d bytes, want %d", dst, i, n, len(msg))
			}
		}
		c.Close()
	}
	if s := h.st.Stats(); s.UDPTotal != 2 || s.UDPOpen != 2 {
		t.Errorf("stats %+v; want 2 UDP flows open", s)
	}
}

func refuseAll(context.Context, Flow) (net.Conn, error) { return nil, errors.New("no TCP here") }

// TestUDPIdleExpiry lets a flow go idle. It reads no echoes: with a timeout
// this short, a loaded machine may expire the flow before the echo returns.
func TestUDPIdleExpiry(t *testing.T) {
	e := newUDPEcho(t)
	h := newHarness(t, Config{TCP: refuseAll, UDP: e.handler, IdleUDP: 20 * time.Millisecond})
	c, err := h.dialUDP(netip.MustParseAddrPort("100.64.0.9:5000"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	waitStats := func(what string, ok func(Stats) bool) {
		t.Helper()
		for !ok(h.st.Stats()) {
			if ctx.Err() != nil {
				t.Fatalf("%s never happened: %+v", what, h.st.Stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	c.Write([]byte("hello"))
	waitStats("expiry", func(s Stats) bool { return s.UDPExpired == 1 })
	if s := h.st.Stats(); s.UDPOpen != 0 || s.UDPTotal != 1 {
		t.Errorf("after expiry: %+v; want 1 flow, none open", s)
	}
	if e.closed.Load() != 1 {
		t.Errorf("upstream closed %d times, want 1", e.closed.Load())
	}
	// A new datagram on the same 4-tuple opens a new flow.
	c.Write([]byte("again"))
	waitStats("second flow", func(s Stats) bool { return s.UDPTotal == 2 })
}

func TestUDPRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler UDPHandler
	}{
		{"handler error", func(context.Context, Flow) (DatagramConn, error) { return nil, errors.New("no") }},
		{"nil conn", func(context.Context, Flow) (DatagramConn, error) { return nil, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{TCP: refuseAll, UDP: tc.handler})
			c, err := h.dialUDP(netip.MustParseAddrPort("100.64.0.9:53"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("q"))
			ctx := testCtx(t)
			for h.st.Stats().UDPRefused == 0 {
				if ctx.Err() != nil {
					t.Fatal("flow never refused")
				}
				time.Sleep(time.Millisecond)
			}
			if s := h.st.Stats(); s.UDPOpen != 0 || s.UDPTotal != 0 {
				t.Errorf("stats %+v; want no UDP flow", s)
			}
		})
	}
}

// TestUDPWithoutHandlerIsRefused checks that, with no UDP handler, the stack
// answers with ICMP port unreachable (a kernel socket then reports
// ECONNREFUSED; TestRealTUN checks that part).
func TestUDPWithoutHandlerIsRefused(t *testing.T) {
	h := newHarness(t, Config{TCP: refuseAll})
	c, err := h.dialUDP(netip.MustParseAddrPort("100.64.0.9:53"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("q"))
	ctx := testCtx(t)
	for h.client.Stats().ICMP.V4.PacketsReceived.DstUnreachable.Value() == 0 {
		if ctx.Err() != nil {
			t.Fatal("client never received port unreachable")
		}
		time.Sleep(time.Millisecond)
	}
}
