package netstack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// relayBufSize is the copy buffer per direction of a TCP flow: large enough
// that a bulk transfer costs few upstream writes.
const relayBufSize = 128 << 10

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

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
	log := s.log.With(zap.Stringer("flow", f))

	ctx, cancel := context.WithTimeout(s.ctx, handlerTimeout)
	up, err := s.cfg.TCP(ctx, f)
	cancel()
	if err == nil && up == nil {
		err = errNilConn
	}
	if err != nil {
		s.stats.tcpRefused.Add(1)
		log.Debug("flow refused", zap.Error(err))
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
		log.Debug("handshake failed", zap.Stringer("err", terr))
		return
	}
	r.Complete(false)
	client := gonet.NewTCPConn(&wq, ep)
	s.relayTCP(log, client, ep, up)
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
// the other.
func (s *Stack) relayTCP(log *zap.Logger, client *gonet.TCPConn, ep tcpip.Endpoint, up net.Conn) {
	rl := &relay{abortFn: func() {
		ep.Abort()
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
			s.clientToUpstream(log, client, up, rl)
		}()
	} else {
		rl.abort()
		close(done)
	}
	s.upstreamToClient(log, client, up, rl)
	<-done
	client.Close()
	up.Close()
}

// clientToUpstream carries the client's bytes upstream; the client's FIN
// becomes CloseWrite on the upstream, and a client reset resets the upstream.
func (s *Stack) clientToUpstream(log *zap.Logger, client *gonet.TCPConn, up net.Conn, rl *relay) {
	readErr, writeErr := pipe(up, client)
	switch {
	case writeErr != nil:
		log.Debug("upstream write failed; resetting client", zap.Error(writeErr))
		rl.abort()
	case readErr == io.EOF:
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil {
				rl.abort()
			}
		}
	default:
		log.Debug("client connection ended abnormally", zap.Error(readErr))
		rl.abort()
	}
}

// upstreamToClient carries upstream bytes to the client; upstream EOF shuts
// down the client's write side (FIN), an upstream error resets the client.
func (s *Stack) upstreamToClient(log *zap.Logger, client *gonet.TCPConn, up net.Conn, rl *relay) {
	readErr, writeErr := pipe(client, up)
	switch {
	case writeErr != nil:
		log.Debug("client write failed; resetting upstream", zap.Error(writeErr))
		rl.abort()
	case readErr == io.EOF:
		if err := client.CloseWrite(); err != nil {
			rl.abort()
		}
	default:
		log.Debug("upstream ended abnormally; resetting client", zap.Error(readErr))
		rl.abort()
	}
}

// pipe copies src to dst until src ends, returning io.EOF for a clean end.
func pipe(dst io.Writer, src io.Reader) (readErr, writeErr error) {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			return err, nil
		}
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
