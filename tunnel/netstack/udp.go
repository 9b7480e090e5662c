package netstack

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/ztagent/ztagent/tunnel/flowio"
)

// maxDatagram is the largest UDP payload relayed.
const maxDatagram = 1<<16 - 1

// udpReceiveBuffer is a UDP flow's queue of datagrams from the client,
// about 4 ms at 2 Gbit/s (gVisor's default, 212 KiB, is under 10 ms at
// 200 Mbit/s).
const udpReceiveBuffer = 1 << 20

// datagramBufs hold one datagram, lent only while it moves: an idle flow
// holds none.
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
	wq := new(waiter.Queue)
	ep, err := r.CreateEndpoint(wq)
	if err != nil {
		<-s.udpPending
		s.wg.Done()
		s.log.Debug("create UDP endpoint", zap.Stringer("flow", f), zap.Stringer("err", err))
		return
	}
	// The queue absorbs the upstream's stalls (a busy machine, a TLS write)
	// at the client's rate; it holds memory only while datagrams wait.
	ep.SocketOptions().SetReceiveBufferSize(udpReceiveBuffer, false)
	go s.serveUDP(f, &udpClient{UDPConn: gonet.NewUDPConn(wq, ep), wq: wq, ep: ep}, quote)
}

// serveUDP opens the upstream for one UDP flow and relays datagrams until
// the flow is idle for the idle timeout, is evicted from the flow table, or
// either side fails.
func (s *Stack) serveUDP(f Flow, client *udpClient, quote []byte) {
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
	e := newUDPEntry(time.Now().UnixNano())
	if victim := s.udpFlows.add(e); victim != nil {
		s.stats.udpEvicted.Add(1)
		s.logEviction(log)
	}
	s.stats.udpTotal.Add(1)
	s.stats.udpOpen.Add(1)

	end := udpFailed
	if s.startFlow() {
		go func() {
			defer s.wg.Done()
			defer rl.abort()
			s.udpUpstreamToClient(log, client, up, e)
		}()
		end = s.udpClientToUpstream(log, client, up, e)
	}
	// Tear down before counting, so that a reader of Stats who sees the
	// expiry also sees the flow closed.
	rl.abort()
	s.untrack(rl)
	s.udpFlows.remove(e)
	s.stats.udpOpen.Add(-1)
	switch end {
	case udpExpired:
		s.stats.udpExpired.Add(1)
		log.Debug("idle flow expired")
	case udpEvicted:
		log.Debug("flow evicted: too many UDP flows")
	}
}

// logEviction logs the first eviction, and then one a minute at most: a flood
// evicts at the rate of the flood.
func (s *Stack) logEviction(log *zap.Logger) {
	now := time.Now().UnixNano()
	last := s.lastEvictLog.Load()
	if last != 0 && now-last < int64(time.Minute) || !s.lastEvictLog.CompareAndSwap(last, now) {
		return
	}
	log.Warn("UDP flow table full: the flow idle longest was closed", zap.Int("max_udp_flows", s.cfg.MaxUDPFlows),
		zap.Int64("evicted_so_far", s.stats.udpEvicted.Load()))
}

// How a UDP flow ended.
const (
	udpFailed  = iota // a side failed or closed
	udpExpired        // idle for the idle timeout
	udpEvicted        // evicted from the full flow table
)

// udpClient is the client's end of a UDP flow: the gVisor endpoint, readable
// through gonet and waitable without a buffer.
type udpClient struct {
	*gonet.UDPConn
	wq *waiter.Queue
	ep tcpip.Endpoint
}

// wait returns true once a datagram (or the endpoint's end) is waiting, or
// false at deadline or when evicted or changed is closed.
func (c *udpClient) wait(deadline time.Time, evicted, changed <-chan struct{}) bool {
	const mask = waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr
	if c.ep.Readiness(mask) != 0 {
		return true
	}
	e, ch := waiter.NewChannelEntry(mask)
	c.wq.EventRegister(&e)
	defer c.wq.EventUnregister(&e)
	if c.ep.Readiness(mask) != 0 {
		return true
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-evicted:
	case <-changed:
	}
	return false
}

// udpClientToUpstream relays client datagrams upstream until the flow has
// been idle for the idle timeout (no datagram either way), is evicted, or
// the client's end fails. Datagrams queued together go upstream together
// when the upstream takes batches (a tunnel stream: one frame for them). A
// datagram the upstream refuses is dropped and counted; a broken upstream
// ends the other direction, which aborts the flow.
func (s *Stack) udpClientToUpstream(log *zap.Logger, client *udpClient, up DatagramConn, e *udpEntry) (end int) {
	bw, _ := up.(datagramBatcher)
	var batch [maxUDPBatch][]byte
	for {
		select {
		case <-e.evicted:
			return udpEvicted
		default:
		}
		changed := *s.idleChanged.Load()
		deadline := time.Unix(0, e.last.Load()).Add(s.idleUDP())
		if !time.Now().Before(deadline) {
			return udpExpired
		}
		if !client.wait(deadline, e.evicted, changed) {
			continue // re-check: the other direction may have been active
		}
		bp := batchBufs.Get().(*[]byte)
		n, err := client.readBatch(*bp, batch[:], bw != nil)
		if n > 0 {
			e.last.Store(time.Now().UnixNano())
			if dropped := writeDatagrams(up, bw, batch[:n], log); dropped > 0 {
				s.stats.udpDropped.Add(int64(dropped))
			}
		}
		batchBufs.Put(bp)
		if err != nil {
			return udpFailed
		}
	}
}

// datagramBatcher is a DatagramConn that takes several datagrams at once.
type datagramBatcher interface {
	WriteBatch(ps [][]byte) (int, error)
}

// maxUDPBatch bounds the datagrams relayed upstream at once.
const maxUDPBatch = 64

// batchBufs hold the datagrams of one batch, lent only while they move.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 4*maxDatagram); return &b }}

// readBatch reads one datagram into buf, and with more, every further one
// already queued while buf has room for one more of any size, into batch. It
// returns how many it read.
func (c *udpClient) readBatch(buf []byte, batch [][]byte, more bool) (int, error) {
	n := 0
	for n < len(batch) && len(buf) >= maxDatagram {
		m, err := c.Read(buf[:maxDatagram])
		if err != nil {
			return n, err
		}
		batch[n], buf = buf[:m:m], buf[m:]
		n++
		if !more || c.ep.Readiness(waiter.ReadableEvents) == 0 {
			break
		}
	}
	return n, nil
}

// writeDatagrams sends ps upstream, as a batch when bw is not nil, and
// returns how many were dropped.
func writeDatagrams(up DatagramConn, bw datagramBatcher, ps [][]byte, log *zap.Logger) (dropped int) {
	if bw != nil {
		n, err := bw.WriteBatch(ps)
		if err != nil {
			log.Debug("upstream write failed", zap.Error(err))
		}
		return len(ps) - n
	}
	for _, p := range ps {
		if _, err := up.Write(p); err != nil {
			dropped++
			log.Debug("upstream write failed", zap.Error(err))
		}
	}
	return dropped
}

// udpUpstreamToClient relays upstream datagrams to the client. It waits for
// one without a buffer when the upstream can (flowio.Waiter: a socket, a
// tunnel stream). A datagram the client's end refuses (larger than it can
// send) is dropped and counted.
func (s *Stack) udpUpstreamToClient(log *zap.Logger, client *udpClient, up DatagramConn, e *udpEntry) {
	wait := flowio.Waiter(up)
	for {
		if wait != nil {
			if err := wait(); err != nil {
				return
			}
		}
		bp := datagramBufs.Get().(*[]byte)
		n, err := up.Read(*bp)
		if err == nil {
			e.last.Store(time.Now().UnixNano())
			if _, werr := client.Write((*bp)[:n]); werr != nil {
				s.stats.udpDropped.Add(1)
				log.Debug("client write failed", zap.Error(werr))
			}
		}
		datagramBufs.Put(bp)
		if err != nil {
			return
		}
	}
}
