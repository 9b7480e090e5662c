package netstack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// linkQueueLen bounds the packets gVisor may have queued for the TUN writer.
// A full queue blocks the sending TCP endpoint (backpressure, not loss).
const linkQueueLen = 1024

// linkEndpoint is the stack's NIC. Outbound packets are queued for the TUN
// writer goroutine; inbound packets are delivered by the TUN reader through
// the dispatcher gVisor attaches.
type linkEndpoint struct {
	mtu atomic.Uint32
	gso stack.SupportedGSO

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher

	q         chan *stack.PacketBuffer
	closing   chan struct{}
	closeOnce sync.Once
}

var (
	_ stack.LinkEndpoint = (*linkEndpoint)(nil)
	_ stack.GSOEndpoint  = (*linkEndpoint)(nil)
)

func newLinkEndpoint(mtu uint32, queueLen int, gso stack.SupportedGSO) *linkEndpoint {
	l := &linkEndpoint{
		gso:     gso,
		q:       make(chan *stack.PacketBuffer, queueLen),
		closing: make(chan struct{}),
	}
	l.mtu.Store(mtu)
	return l
}

// WritePackets queues pkts for the TUN writer. It blocks while the queue is
// full, which paces gVisor's senders to the speed of the device.
func (l *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		select {
		case <-l.closing:
			return n, &tcpip.ErrClosedForSend{}
		default:
		}
		select {
		case l.q <- pkt.IncRef():
			n++
		case <-l.closing:
			pkt.DecRef()
			return n, &tcpip.ErrClosedForSend{}
		}
	}
	return n, nil
}

// next blocks for the next outbound packet. After Close it still returns
// the packets queued before (the RSTs of aborted flows), then nil.
func (l *linkEndpoint) next() *stack.PacketBuffer {
	select {
	case p := <-l.q:
		return p
	case <-l.closing:
		return l.tryNext()
	}
}

// tryNext returns a queued outbound packet without blocking, or nil.
func (l *linkEndpoint) tryNext() *stack.PacketBuffer {
	select {
	case p := <-l.q:
		return p
	default:
		return nil
	}
}

// deliver hands an inbound packet to the stack. It reports false if the
// endpoint is detached (the stack is closing).
func (l *linkEndpoint) deliver(pkt *stack.PacketBuffer) bool {
	l.mu.RLock()
	d := l.dispatcher
	l.mu.RUnlock()
	if d == nil {
		return false
	}
	d.DeliverNetworkPacket(pkt.NetworkProtocolNumber, pkt)
	return true
}

func (l *linkEndpoint) dispatcherOrNil() stack.NetworkDispatcher {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.dispatcher
}

// Close detaches the endpoint and releases queued packets. gVisor calls it
// from RemoveNIC.
func (l *linkEndpoint) Close() {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.dispatcher = nil
		l.mu.Unlock()
		close(l.closing)
	})
}

// drain releases packets left in the queue after Close; called by the writer
// as it exits, after which nothing else reads the queue.
func (l *linkEndpoint) drain() {
	for {
		select {
		case p := <-l.q:
			p.DecRef()
		default:
			return
		}
	}
}

func (l *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	l.mu.Lock()
	l.dispatcher = d
	l.mu.Unlock()
}

func (l *linkEndpoint) IsAttached() bool { return l.dispatcherOrNil() != nil }
func (l *linkEndpoint) MTU() uint32      { return l.mtu.Load() }
func (l *linkEndpoint) SetMTU(m uint32)  { l.mtu.Store(m) }

// Capabilities: inbound checksums are verified by the reader before delivery
// (gVisor's GRO requires it), so the stack need not verify them again.
func (l *linkEndpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

func (*linkEndpoint) MaxHeaderLength() uint16                 { return 0 }
func (*linkEndpoint) LinkAddress() tcpip.LinkAddress          { return "" }
func (*linkEndpoint) SetLinkAddress(tcpip.LinkAddress)        {}
func (*linkEndpoint) Wait()                                   {}
func (*linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (*linkEndpoint) AddHeader(*stack.PacketBuffer)           {}
func (*linkEndpoint) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (*linkEndpoint) SetOnCloseAction(func())                 {}
func (l *linkEndpoint) SupportedGSO() stack.SupportedGSO      { return l.gso }
func (*linkEndpoint) GSOMaxSize() uint32                      { return gsoMaxSize }
