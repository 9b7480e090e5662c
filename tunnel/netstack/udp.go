package netstack

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// maxDatagram is the largest UDP payload relayed.
const maxDatagram = 1<<16 - 1

var datagramBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// handleUDP is gVisor's handler for a datagram of a 4-tuple with no endpoint
// yet (the first of a flow), called on the TUN reader goroutine. It keeps the
// start of the datagram, which an ICMP error refusing the flow must quote
// (gVisor's forwarder request does not expose it), and forwards the rest.
func (s *Stack) handleUDP(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
	quote := quoteOf(pkt)
	fwd := udp.NewForwarder(s.ip, func(r *udp.ForwarderRequest) { s.acceptUDP(r, quote) })
	return fwd.HandlePacket(id, pkt)
}

// acceptUDP runs on the TUN reader goroutine, inside handleUDP. It must not
// block: it creates the flow's endpoint (which queues this and later
// datagrams) and hands the rest to a goroutine.
func (s *Stack) acceptUDP(r *udp.ForwarderRequest, quote []byte) {
	f := flowOf(ProtoUDP, r.ID())
	select {
	case s.udpPending <- struct{}{}:
	default:
		s.stats.udpRefused.Add(1) // too many flows opening at once; the client may retry
		return
	}
	if !s.startFlow() {
		<-s.udpPending
		return
	}
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		<-s.udpPending
		s.wg.Done()
		s.log.Debug("create UDP endpoint", zap.Stringer("flow", f), zap.Stringer("err", err))
		return
	}
	go s.serveUDP(f, gonet.NewUDPConn(&wq, ep), quote)
}

// serveUDP opens the upstream for one UDP flow and relays datagrams until
// the flow is idle for IdleUDP or either side fails.
func (s *Stack) serveUDP(f Flow, client *gonet.UDPConn, quote []byte) {
	defer s.wg.Done()
	log := s.log.With(zap.Stringer("flow", f))
	ctx, cancel := context.WithTimeout(s.ctx, handlerTimeout)
	up, err := s.cfg.UDP(ctx, f)
	cancel()
	<-s.udpPending
	if err == nil && up == nil {
		err = errNilConn
	}
	if err != nil {
		s.stats.udpRefused.Add(1)
		log.Debug("flow refused", zap.Error(err))
		client.Close()
		if code, ok := refusal(err); ok {
			if b, ok := unreachable(quote, code); ok {
				s.sendICMP(b)
			}
		}
		return
	}
	rl := &relay{abortFn: func() {
		client.Close()
		up.Close()
	}}
	if !s.track(rl) {
		rl.abort()
		return
	}
	s.stats.udpTotal.Add(1)
	s.stats.udpOpen.Add(1)

	var last atomic.Int64 // unix nanos of the last datagram in either direction
	last.Store(time.Now().UnixNano())
	expired := false
	if s.startFlow() {
		go func() {
			defer s.wg.Done()
			defer rl.abort()
			s.udpUpstreamToClient(log, client, up, &last)
		}()
		expired = s.udpClientToUpstream(log, client, up, &last)
	}
	// Tear down before counting, so that a reader of Stats who sees the
	// expiry also sees the flow closed.
	rl.abort()
	s.untrack(rl)
	s.stats.udpOpen.Add(-1)
	if expired {
		s.stats.udpExpired.Add(1)
		log.Debug("idle flow expired")
	}
}

// udpClientToUpstream relays client datagrams upstream. The read deadline
// doubles as the idle timer: when it fires and no datagram went either way
// for IdleUDP, the flow has expired (reported true).
func (s *Stack) udpClientToUpstream(log *zap.Logger, client *gonet.UDPConn, up DatagramConn, last *atomic.Int64) (expired bool) {
	bp := datagramBufs.Get().(*[]byte)
	defer datagramBufs.Put(bp)
	buf := *bp
	idle := s.cfg.IdleUDP
	for {
		deadline := time.Unix(0, last.Load()).Add(idle)
		if !time.Now().Before(deadline) {
			return true
		}
		_ = client.SetReadDeadline(deadline)
		n, err := client.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // re-check: the other direction may have been active
			}
			return false
		}
		last.Store(time.Now().UnixNano())
		if _, err := up.Write(buf[:n]); err != nil {
			log.Debug("upstream write failed", zap.Error(err))
			return false
		}
	}
}

func (s *Stack) udpUpstreamToClient(log *zap.Logger, client *gonet.UDPConn, up DatagramConn, last *atomic.Int64) {
	bp := datagramBufs.Get().(*[]byte)
	defer datagramBufs.Put(bp)
	buf := *bp
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		last.Store(time.Now().UnixNano())
		if _, err := client.Write(buf[:n]); err != nil {
			log.Debug("client write failed", zap.Error(err))
			return
		}
	}
}
