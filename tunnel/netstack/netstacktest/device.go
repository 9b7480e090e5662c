package netstacktest

import (
	"os"
	"sync"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const maxPacket = 1 << 16

// device is the in-memory tun.Device: Read returns what the peer sends,
// in batches; Write delivers to the peer synchronously.
type device struct {
	mtu, batch int
	in         chan *[]byte // peer → device reader
	deliver    func([]byte)
	closed     chan struct{}
	closeOnce  sync.Once
	events     chan tun.Event
	pool       sync.Pool // of *[]byte with capacity maxPacket
}

func newDevice(opts Options, deliver func([]byte)) *device {
	d := &device{
		mtu:     opts.MTU,
		batch:   opts.Batch,
		in:      make(chan *[]byte, 1024),
		deliver: deliver,
		closed:  make(chan struct{}),
		events:  make(chan tun.Event, 1),
	}
	d.pool.New = func() any { b := make([]byte, 0, maxPacket); return &b }
	d.events <- tun.EventUp
	return d
}

func (d *device) get() *[]byte  { return d.pool.Get().(*[]byte) }
func (d *device) put(b *[]byte) { d.pool.Put(b) }

// push queues a packet for Read; it blocks while the reader is behind.
func (d *device) push(b *[]byte) error {
	select {
	case d.in <- b:
		return nil
	case <-d.closed:
		return os.ErrClosed
	}
}

func (d *device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var b *[]byte
	select {
	case b = <-d.in:
	case <-d.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], *b)
		d.put(b)
		n++
		if n == len(bufs) || n == d.batch {
			return n, nil
		}
		select {
		case b = <-d.in:
		default:
			return n, nil
		}
	}
}

func (d *device) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	for _, b := range bufs {
		d.deliver(b[offset:])
	}
	return len(bufs), nil
}

func (d *device) File() *os.File           { return nil }
func (d *device) MTU() (int, error)        { return d.mtu, nil }
func (d *device) Name() (string, error)    { return "peer0", nil }
func (d *device) Events() <-chan tun.Event { return d.events }
func (d *device) BatchSize() int           { return d.batch }

func (d *device) Close() error {
	d.closeOnce.Do(func() {
		close(d.closed)
		close(d.events)
	})
	return nil
}

// link is the peer stack's NIC. Unlike gVisor's channel endpoint it blocks
// when its queue is full instead of dropping, so tests see no loss the
// bridge did not cause.
type link struct {
	mtu        uint32
	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
	q          chan *stack.PacketBuffer
	closing    chan struct{}
	closeOnce  sync.Once
}

var _ stack.LinkEndpoint = (*link)(nil)

func newLink(mtu uint32) *link {
	return &link{mtu: mtu, q: make(chan *stack.PacketBuffer, 1024), closing: make(chan struct{})}
}

func (l *link) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
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

// next returns the next outbound packet, or nil once closed and drained.
func (l *link) next() *stack.PacketBuffer {
	select {
	case p := <-l.q:
		return p
	case <-l.closing:
		select {
		case p := <-l.q:
			return p
		default:
			return nil
		}
	}
}

func (l *link) deliver(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	l.mu.RLock()
	d := l.dispatcher
	l.mu.RUnlock()
	if d != nil {
		d.DeliverNetworkPacket(proto, pkt)
	}
}

func (l *link) Close() {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.dispatcher = nil
		l.mu.Unlock()
		close(l.closing)
	})
}

func (l *link) Attach(d stack.NetworkDispatcher) {
	l.mu.Lock()
	l.dispatcher = d
	l.mu.Unlock()
}

func (l *link) IsAttached() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.dispatcher != nil
}

func (l *link) MTU() uint32                                { return l.mtu }
func (l *link) SetMTU(uint32)                              {}
func (*link) Capabilities() stack.LinkEndpointCapabilities { return 0 }
func (*link) MaxHeaderLength() uint16                      { return 0 }
func (*link) LinkAddress() tcpip.LinkAddress               { return "" }
func (*link) SetLinkAddress(tcpip.LinkAddress)             {}
func (*link) Wait()                                        {}
func (*link) ARPHardwareType() header.ARPHardwareType      { return header.ARPHardwareNone }
func (*link) AddHeader(*stack.PacketBuffer)                {}
func (*link) ParseHeader(*stack.PacketBuffer) bool         { return true }
func (*link) SetOnCloseAction(func())                      {}
