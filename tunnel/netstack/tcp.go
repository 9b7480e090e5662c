package netstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/ztagent/ztagent/tunnel/flowio"
)

var errNilConn = errors.New("handler returned neither a connection nor an error")

// relay is one open flow; abort tears both sides down (used by Close).
type relay struct {
	once    sync.Once
	abortFn func()
}

func (r *relay) abort() { r.once.Do(r.abortFn) }

// acceptTCP runs on its own goroutine (started by gVisor's forwarder) for
// each new SYN. It asks the handler for an upstream before answering the
// SYN, then relays the flow on this goroutine and one more.
func (s *Stack) acceptTCP(r *tcp.ForwarderRequest) {
	if !s.startFlow() {
		r.Complete(true)
		return
	}
	defer s.wg.Done()
	f := flowOf(ProtoTCP, r.ID())

	ctx, cancel := context.WithTimeout(s.ctx, handlerTimeout)
	up, err := s.cfg.TCP(ctx, f)
	cancel()
	if err == nil && up == nil {
		err = errNilConn
	}
	if err != nil {
		s.stats.tcpRefused.Add(1)
		s.log.Debug("flow refused", zap.Stringer("flow", f), zap.Error(err))
		r.Complete(true) // RST: the client sees "connection refused"
		return
	}
	var wq waiter.Queue
	if !s.beginHandshake(&wq) {
		r.Complete(true)
		up.Close()
		return
	}
	ep, terr := r.CreateEndpoint(&wq) // completes the handshake
	s.endHandshake(&wq)
	if terr != nil {
		r.Complete(true)
		up.Close()
		s.log.Debug("handshake failed", zap.Stringer("flow", f), zap.Stringer("err", terr))
		return
	}
	r.Complete(false)
	s.relayTCP(f, &clientConn{TCPConn: gonet.NewTCPConn(&wq, ep), wq: &wq, ep: ep}, up)
}

// clientConn is the client's end of a flow: the gVisor endpoint, readable
// through gonet and waitable without a buffer.
type clientConn struct {
	*gonet.TCPConn
	wq *waiter.Queue
	ep tcpip.Endpoint
}

// WaitRead returns once a Read would not block: data, the client's FIN, a
// reset or the endpoint's closing is waiting (flowio.ReadWaiter).
func (c *clientConn) WaitRead() error {
	const mask = waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr
	if c.ep.Readiness(mask) != 0 {
		return nil
	}
	e, ch := waiter.NewChannelEntry(mask)
	c.wq.EventRegister(&e)
	defer c.wq.EventUnregister(&e)
	if c.ep.Readiness(mask) == 0 {
		<-ch
	}
	return nil
}

// beginHandshake registers the waiter queue of a handshake in progress, so
// that Close can cut it short; false once closed.
func (s *Stack) beginHandshake(wq *waiter.Queue) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.handshakes[wq] = struct{}{}
	return true
}

func (s *Stack) endHandshake(wq *waiter.Queue) {
	s.mu.Lock()
	delete(s.handshakes, wq)
	s.mu.Unlock()
}

// relayTCP copies both directions until both have ended. A clean end of one
// direction is passed on as a half-close; an error on either side resets
// the other. An idle flow holds no copy buffer: each direction waits for data
// without one (flowio.Copy), on the gVisor endpoint and, when the upstream can
// (a tunnel stream, a socket), on the upstream.
func (s *Stack) relayTCP(f Flow, client *clientConn, up net.Conn) {
	rl := &relay{abortFn: func() {
		client.ep.Abort()
		resetConn(up)
	}}
	if !s.track(rl) {
		rl.abort()
		return
	}
	s.stats.tcpTotal.Add(1)
	s.stats.tcpOpen.Add(1)
	defer s.stats.tcpOpen.Add(-1)
	defer s.untrack(rl)

	done := make(chan struct{})
	if s.startFlow() {
		go func() {
			defer s.wg.Done()
			defer close(done)
			s.clientToUpstream(f, client, up, rl)
		}()
	} else {
		rl.abort()
		close(done)
	}
	s.upstreamToClient(f, client, up, rl)
	<-done
	client.Close()
	up.Close()
}

// clientToUpstream carries the client's bytes upstream; the client's FIN
// becomes CloseWrite on the upstream, and a client reset resets the upstream.
func (s *Stack) clientToUpstream(f Flow, client *clientConn, up net.Conn, rl *relay) {
	readErr, writeErr := flowio.Copy(up, client, client.WaitRead, nil)
	switch {
	case writeErr != nil:
		s.log.Debug("upstream write failed; resetting client", zap.Stringer("flow", f), zap.Error(writeErr))
		rl.abort()
	case readErr == nil:
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil {
				rl.abort()
			}
		}
	default:
		s.log.Debug("client connection ended abnormally", zap.Stringer("flow", f), zap.Error(readErr))
		rl.abort()
	}
}

// upstreamToClient carries upstream bytes to the client; upstream EOF shuts
// down the client's write side (FIN), an upstream error resets the client.
func (s *Stack) upstreamToClient(f Flow, client *clientConn, up net.Conn, rl *relay) {
	readErr, writeErr := flowio.Copy(client, up, flowio.Waiter(up), nil)
	switch {
	case writeErr != nil:
		s.log.Debug("client write failed; resetting upstream", zap.Stringer("flow", f), zap.Error(writeErr))
		rl.abort()
	case readErr == nil:
		if err := client.CloseWrite(); err != nil {
			rl.abort()
		}
	default:
		s.log.Debug("upstream ended abnormally; resetting client", zap.Stringer("flow", f), zap.Error(readErr))
		rl.abort()
	}
}

// resetConn closes c so that its peer sees a reset when the transport
// allows it: linger 0 makes a TCP close send RST instead of FIN.
func resetConn(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = c.Close()
}

// flowOf converts a gVisor endpoint ID (local = the address the client
// dialled) into a Flow.
func flowOf(proto uint8, id stack.TransportEndpointID) Flow {
	return Flow{
		Proto: proto,
		Src:   netip.AddrPortFrom(addrOf(id.RemoteAddress), id.RemotePort),
		Dst:   netip.AddrPortFrom(addrOf(id.LocalAddress), id.LocalPort),
	}
}

func addrOf(a tcpip.Address) netip.Addr {
	if a.Len() == 4 {
		return netip.AddrFrom4(a.As4())
	}
	return netip.AddrFrom16(a.As16())
}
