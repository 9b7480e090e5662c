package netstack

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zaptest"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const testMTU = 1420

var (
	clientV4 = netip.MustParseAddr("10.0.0.2")
	clientV6 = netip.MustParseAddr("fd00::2")
)

// pipeTUN is an in-memory tun.Device whose other end is a second gVisor
// stack playing the client's operating system. Read returns what the client
// sends, in batches like the Linux device with offloads; Write delivers
// packets to the client, checking every checksum the bridge produced.
type pipeTUN struct {
	batch     int
	in        chan *[]byte // client → Stack
	deliver   func([]byte)
	closed    chan struct{}
	closeOnce sync.Once
	events    chan tun.Event
	badCsum   atomic.Int64
	blackhole netip.Addr // packets to it vanish (a client that went away)
	bufs      sync.Pool  // of *[]byte, 64 KiB
}

func newPipeTUN(batch int) *pipeTUN {
	d := &pipeTUN{
		batch:  batch,
		in:     make(chan *[]byte, 1024),
		closed: make(chan struct{}),
		events: make(chan tun.Event, 1),
	}
	d.bufs.New = func() any { b := make([]byte, 1<<16); return &b }
	d.events <- tun.EventUp
	return d
}

func (d *pipeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p *[]byte
	select {
	case p = <-d.in:
	case <-d.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], *p)
		d.bufs.Put(p)
		n++
		if n == len(bufs) || n == d.batch {
			return n, nil
		}
		select {
		case p = <-d.in:
		default:
			return n, nil
		}
	}
}

func (d *pipeTUN) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	for _, b := range bufs {
		p := b[offset:]
		if !checksumsValid(p) {
			d.badCsum.Add(1)
			continue
		}
		if d.blackhole.IsValid() && header.IPVersion(p) == header.IPv4Version &&
			netip.AddrFrom4(header.IPv4(p).DestinationAddress().As4()) == d.blackhole {
			continue
		}
		d.deliver(p)
	}
	return len(bufs), nil
}

func (d *pipeTUN) File() *os.File           { return nil }
func (d *pipeTUN) MTU() (int, error)        { return testMTU, nil }
func (d *pipeTUN) Name() (string, error)    { return "pipe0", nil }
func (d *pipeTUN) Events() <-chan tun.Event { return d.events }
func (d *pipeTUN) BatchSize() int           { return d.batch }
func (d *pipeTUN) Close() error {
	d.closeOnce.Do(func() {
		close(d.closed)
		close(d.events)
	})
	return nil
}

// harness wires a client stack to a Stack through a pipeTUN.
type harness struct {
	t          testing.TB
	dev        *pipeTUN
	st         *Stack
	client     *stack.Stack
	clientLink *linkEndpoint
	pump       sync.WaitGroup
	closeOnce  sync.Once
}

func newHarness(t testing.TB, cfg Config, opts ...func(*harness)) *harness {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = zaptest.NewLogger(t)
	}
	h := &harness{t: t, dev: newPipeTUN(8)}
	h.clientLink = newLinkEndpoint(testMTU, 1024, stack.GSONotSupported)
	client, err := newIPStack(h.clientLink)
	if err != nil {
		t.Fatal(err)
	}
	h.client = client
	for _, a := range []netip.Addr{clientV4, clientV6} {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if e := client.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); e != nil {
			t.Fatal(e)
		}
	}
	h.dev.deliver = func(p []byte) {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		if header.IPVersion(p) == header.IPv6Version {
			pkt.NetworkProtocolNumber = header.IPv6ProtocolNumber
		}
		h.clientLink.deliver(pkt)
		pkt.DecRef()
	}
	for _, o := range opts {
		o(h)
	}
	h.pump.Add(1)
	go h.pumpClient()
	h.st, err = New(h.dev, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

// pumpClient moves the client's outbound packets into the device.
func (h *harness) pumpClient() {
	defer h.pump.Done()
	defer h.clientLink.drain()
	for {
		pkt := h.clientLink.next()
		if pkt == nil {
			return
		}
		bp := h.dev.bufs.Get().(*[]byte)
		*bp = (*bp)[:cap(*bp)][:pkt.Size()]
		packetReadAt(pkt, *bp, 0)
		pkt.DecRef()
		select {
		case h.dev.in <- bp:
		case <-h.dev.closed:
		}
	}
}

func (h *harness) close() {
	h.closeOnce.Do(func() {
		if err := h.st.Close(); err != nil {
			h.t.Errorf("Close: %v", err)
		}
		h.client.Close()
		h.client.Wait()
		h.client.RemoveNIC(nicID)
		h.pump.Wait()
		if n := h.dev.badCsum.Load(); n != 0 {
			h.t.Errorf("%d packets from the bridge had bad checksums", n)
		}
	})
}

// dialTCP connects from the client stack; the endpoint is returned too so
// that a test can abort (reset) the connection.
func (h *harness) dialTCP(ctx context.Context, dst netip.AddrPort) (*gonet.TCPConn, tcpip.Endpoint, error) {
	proto := ipv4.ProtocolNumber
	if dst.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	var wq waiter.Queue
	ep, e := h.client.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if e != nil {
		return nil, nil, fmt.Errorf("new endpoint: %s", e)
	}
	we, ch := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	addr := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(dst.Addr().AsSlice()), Port: dst.Port()}
	switch e := ep.Connect(addr); e.(type) {
	case nil:
	case *tcpip.ErrConnectStarted:
		select {
		case <-ch:
		case <-ctx.Done():
			ep.Close()
			return nil, nil, ctx.Err()
		}
		if e := ep.LastError(); e != nil {
			ep.Close()
			return nil, nil, fmt.Errorf("connect: %s", e)
		}
	default:
		ep.Close()
		return nil, nil, fmt.Errorf("connect: %s", e)
	}
	return gonet.NewTCPConn(&wq, ep), ep, nil
}

func (h *harness) dialUDP(dst netip.AddrPort) (*gonet.UDPConn, error) {
	proto := ipv4.ProtocolNumber
	if dst.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	raddr := &tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(dst.Addr().AsSlice()), Port: dst.Port()}
	return gonet.DialUDP(h.client, nil, raddr, proto)
}
