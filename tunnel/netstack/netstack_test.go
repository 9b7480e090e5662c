package netstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	stubDst = netip.MustParseAddrPort("100.64.0.5:80")
	realDst = netip.MustParseAddrPort("[fd7a::10]:443")
)

// testCtx bounds a test that would otherwise hang on a bug; it asserts no
// timing.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// upstream is a loopback TCP server standing in for a tunnel stream; the
// handler dials it and records the flows it was asked for.
type upstream struct {
	ln       net.Listener
	accepted chan *net.TCPConn
	mu       sync.Mutex
	flows    []Flow
}

func newUpstream(t *testing.T) *upstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{ln: ln, accepted: make(chan *net.TCPConn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepted <- c.(*net.TCPConn)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(u.accepted)
		for c := range u.accepted {
			c.Close()
		}
	})
	return u
}

func (u *upstream) handler(ctx context.Context, f Flow) (net.Conn, error) {
	u.mu.Lock()
	u.flows = append(u.flows, f)
	u.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", u.ln.Addr().String())
}

func (u *upstream) next(t *testing.T) *net.TCPConn {
	t.Helper()
	select {
	case c := <-u.accepted:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(30 * time.Second):
		t.Fatal("upstream connection never arrived")
		return nil
	}
}

func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

func TestTCPRoundTrip(t *testing.T) {
	for _, dst := range []netip.AddrPort{stubDst, realDst} {
		t.Run(dst.String(), func(t *testing.T) {
			u := newUpstream(t)
			h := newHarness(t, Config{TCP: u.handler})
			c, err := h.dialTCP(testCtx(t), dst)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			srv := u.next(t)
			go echo(srv)

			want := make([]byte, 4<<20)
			rand.Read(want)
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(want)
				if err == nil {
					err = c.CloseWrite()
				}
				errc <- err
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("echoed %d bytes, not the %d sent (or they differ)", len(got), len(want))
			}
			src := clientV4
			if dst.Addr().Is6() {
				src = clientV6
			}
			u.mu.Lock()
			f := u.flows[0]
			u.mu.Unlock()
			if f.Proto != ProtoTCP || f.Dst != dst || f.Src.Addr() != src {
				t.Errorf("handler saw flow %v; want tcp %v->%v", f, src, dst)
			}
			if s := h.st.Stats(); s.TCPTotal != 1 {
				t.Errorf("TCPTotal = %d, want 1", s.TCPTotal)
			}
		})
	}
}

func TestTCPRefusedGetsReset(t *testing.T) {
	refused := errors.New("policy denies app")
	var calls atomic.Int32
	h := newHarness(t, Config{TCP: func(context.Context, Flow) (net.Conn, error) {
		calls.Add(1)
		return nil, refused
	}})
	_, err := h.dialTCP(testCtx(t), stubDst)
	if err == nil {
		t.Fatal("connect succeeded; want it refused")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("connect hung instead of being reset")
	}
	t.Logf("client saw: %v", err)
	if calls.Load() != 1 {
		t.Errorf("handler called %d times, want 1", calls.Load())
	}
	if s := h.st.Stats(); s.TCPRefused != 1 || s.TCPTotal != 0 {
		t.Errorf("stats %+v; want 1 refused, 0 total", s)
	}
}

func readAllString(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestTCPHalfClose(t *testing.T) {
	t.Run("client closes first", func(t *testing.T) {
		u := newUpstream(t)
		h := newHarness(t, Config{TCP: u.handler})
		c, err := h.dialTCP(testCtx(t), stubDst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		srv := u.next(t)
		c.Write([]byte("request"))
		c.CloseWrite()
		if got := readAllString(t, srv); got != "request" {
			t.Fatalf("upstream read %q until EOF", got)
		}
		// The client's half-closed connection still carries the response.
		srv.Write([]byte("response"))
		srv.CloseWrite()
		if got := readAllString(t, c); got != "response" {
			t.Fatalf("client read %q until EOF", got)
		}
	})
	t.Run("upstream closes first", func(t *testing.T) {
		u := newUpstream(t)
		h := newHarness(t, Config{TCP: u.handler})
		c, err := h.dialTCP(testCtx(t), stubDst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		srv := u.next(t)
		srv.Write([]byte("banner"))
		srv.CloseWrite()
		if got := readAllString(t, c); got != "banner" {
			t.Fatalf("client read %q until EOF", got)
		}
		c.Write([]byte("after-eof"))
		c.CloseWrite()
		if got := readAllString(t, srv); got != "after-eof" {
			t.Fatalf("upstream read %q until EOF", got)
		}
	})
}

func isReset(err error) bool {
	return err != nil && !errors.Is(err, io.EOF)
}

func TestTCPResetPropagates(t *testing.T) {
	t.Run("upstream reset resets client", func(t *testing.T) {
		u := newUpstream(t)
		h := newHarness(t, Config{TCP: u.handler})
		c, err := h.dialTCP(testCtx(t), stubDst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		srv := u.next(t)
		srv.SetLinger(0)
		srv.Close()
		_, err = io.ReadAll(c)
		if !isReset(err) {
			t.Fatalf("client read ended with %v; want a reset", err)
		}
	})
	t.Run("client reset resets upstream", func(t *testing.T) {
		u := newUpstream(t)
		h := newHarness(t, Config{TCP: u.handler})
		c, err := h.dialTCP(testCtx(t), stubDst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		srv := u.next(t)
		c.Write([]byte("x"))
		buf := make([]byte, 1)
		if _, err := io.ReadFull(srv, buf); err != nil {
			t.Fatal(err)
		}
		c.Abort()
		_, err = io.ReadAll(srv)
		if !isReset(err) {
			t.Fatalf("upstream read ended with %v; want a reset", err)
		}
	})
}

// TestMaxInFlightSYN holds one handler open and checks that a second SYN is
// dropped rather than queued without bound.
func TestMaxInFlightSYN(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	h := newHarness(t, Config{MaxInFlightSYN: 1, TCP: func(ctx context.Context, f Flow) (net.Conn, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, errors.New("released")
	}})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.dialTCP(ctx, stubDst)
	}()
	<-entered
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.dialTCP(ctx, netip.MustParseAddrPort("100.64.0.6:80"))
	}()
	for h.st.Stats().SYNDropped == 0 {
		if ctx.Err() != nil {
			t.Fatal("second SYN was never dropped")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	cancel()
}

// TestCloseDuringHandshake: a client sends a SYN and vanishes; Close must not
// wait out gVisor's SYN-ACK retransmissions (over a minute).
func TestCloseDuringHandshake(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ghost := netip.MustParseAddr("10.0.0.99")
	accepted := make(chan struct{})
	h := newHarness(t, Config{TCP: func(context.Context, Flow) (net.Conn, error) {
		close(accepted)
		return newMemConn(0), nil
	}}, func(o *netstacktest.Options) {
		o.Drop = func(p []byte) bool {
			return header.IPVersion(p) == 4 && header.IPv4(p).DestinationAddress().As4() == ghost.As4()
		}
	})
	h.inject(synFrom(ghost))
	<-accepted
	closed := make(chan error, 1)
	go func() { closed <- h.st.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close waited for the abandoned handshake")
	}
	if s := h.st.Stats(); s.TCPTotal != 0 || s.TCPOpen != 0 {
		t.Errorf("stats %+v; want no flow", s)
	}
}

// TestCloseWithOpenFlows closes the stack while TCP and UDP flows are open
// and a handler is still running: every goroutine must end (goleak) and the
// TCP client must see its connection reset.
func TestCloseWithOpenFlows(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last: after the servers stop
	u := newUpstream(t)
	e := newUDPEcho(t)
	pending := make(chan struct{})
	h := newHarness(t, Config{
		UDP: e.handler,
		TCP: func(ctx context.Context, f Flow) (net.Conn, error) {
			if f.Dst.Port() == 81 {
				close(pending)
				<-ctx.Done() // a slow upstream: Close must cancel it
				return nil, ctx.Err()
			}
			return u.handler(ctx, f)
		},
	})
	ctx := testCtx(t)
	c, err := h.dialTCP(ctx, stubDst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := u.next(t)
	go echo(srv)
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	uc, err := h.dialUDP(netip.MustParseAddrPort("100.64.0.9:53"))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("q"))
	if _, err := uc.Read(buf); err != nil {
		t.Fatal(err)
	}
	dctx, cancelDial := context.WithCancel(ctx)
	defer cancelDial()
	var pendingDial sync.WaitGroup
	pendingDial.Add(1)
	go func() {
		defer pendingDial.Done()
		h.dialTCP(dctx, netip.MustParseAddrPort("100.64.0.5:81"))
	}()
	<-pending

	if s := h.st.Stats(); s.TCPOpen != 1 || s.UDPOpen != 1 {
		t.Fatalf("stats before close %+v", s)
	}
	if err := h.st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(c); !isReset(err) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("client read after Close ended with %v; want a reset", err)
	}
	cancelDial()
	pendingDial.Wait()
	if s := h.st.Stats(); s.TCPOpen != 0 || s.UDPOpen != 0 {
		t.Errorf("stats after close %+v", s)
	}
	h.close()
}

var _ DatagramConn = (*net.UDPConn)(nil)
var _ DatagramConn = (*gonet.UDPConn)(nil)

// flakyTUN fails its first reads, as a device does on a packet it cannot
// parse.
type flakyTUN struct {
	tun.Device
	failures atomic.Int32
}

func (d *flakyTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if d.failures.Add(-1) >= 0 {
		return 0, errors.New("invalid virtio header")
	}
	return d.Device.Read(bufs, sizes, offset)
}

func TestReadErrorsAreSurvived(t *testing.T) {
	peer, err := netstacktest.NewPeer(netstacktest.Options{MTU: testMTU, Addrs: []netip.Addr{clientV4}})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	dev := &flakyTUN{Device: peer.Device()}
	dev.failures.Store(3)
	u := newUpstream(t)
	st, err := New(dev, Config{Log: zaptest.NewLogger(t), TCP: u.handler})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := peer.DialTCP(testCtx(t), stubDst)
	if err != nil {
		t.Fatalf("dial after read errors: %v", err)
	}
	c.Close()
	if s := st.Stats(); s.TUNReadErrs != 3 {
		t.Errorf("TUNReadErrs = %d, want 3", s.TUNReadErrs)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no TCP handler", Config{}},
		{"MTU too small", Config{TCP: refuseAll, MTU: 576}},
		{"MTU too large", Config{TCP: refuseAll, MTU: 70000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer, err := netstacktest.NewPeer(netstacktest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			if st, err := New(peer.Device(), tc.cfg); err == nil {
				st.Close()
				t.Fatal("New accepted the config")
			} else {
				t.Log(err)
			}
		})
	}
}
