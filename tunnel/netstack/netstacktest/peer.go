// Package netstacktest provides a userspace stand-in for the client
// operating system on the far side of a TUN device: a second gVisor stack
// joined to an in-memory tun.Device. Tests hand Device() to netstack.New
// and dial through the Peer as an application would, with real TCP
// handshakes, resets and teardown, and without root.
package netstacktest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const nicID = 1

// Options configure a Peer. Zero values give MTU 1420, batches of 8 and the
// addresses 10.0.0.2 and fd00::2.
type Options struct {
	MTU   int
	Batch int // packets per Device.Read at most, like an offloading device
	Addrs []netip.Addr
	// Drop, if set, discards packets the device is asked to write (toward
	// the peer) for which it returns true: a client that went away.
	Drop func(pkt []byte) bool
}

// Peer is the client OS. Its stack verifies every checksum it receives, and
// Malformed counts the packets written to the device that it rejected.
type Peer struct {
	opts  Options
	ip    *stack.Stack
	link  *link
	dev   *device
	pump  sync.WaitGroup
	close sync.Once
}

// NewPeer starts a Peer. Close it after the stack using Device() is closed.
func NewPeer(opts Options) (*Peer, error) {
	if opts.MTU == 0 {
		opts.MTU = 1420
	}
	if opts.Batch == 0 {
		opts.Batch = 8
	}
	if len(opts.Addrs) == 0 {
		opts.Addrs = []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}
	}
	p := &Peer{opts: opts, link: newLink(uint32(opts.MTU))}
	p.ip = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := p.setup(); err != nil {
		p.ip.Destroy()
		return nil, err
	}
	p.dev = newDevice(opts, p.deliver)
	p.pump.Add(1)
	go p.pumpOut()
	return p, nil
}

func (p *Peer) setup() error {
	sack := tcpip.TCPSACKEnabled(true)
	rx := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	tx := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	for _, o := range []tcpip.SettableTransportProtocolOption{&sack, &rx, &tx} {
		if e := p.ip.SetTransportProtocolOption(tcp.ProtocolNumber, o); e != nil {
			return fmt.Errorf("netstacktest: TCP option: %s", e)
		}
	}
	if e := p.ip.CreateNIC(nicID, p.link); e != nil {
		return fmt.Errorf("netstacktest: create NIC: %s", e)
	}
	for _, a := range p.opts.Addrs {
		pa := tcpip.ProtocolAddress{Protocol: protoOf(a), AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if e := p.ip.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); e != nil {
			return fmt.Errorf("netstacktest: add address %v: %s", a, e)
		}
	}
	p.ip.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	return nil
}

func protoOf(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

// Device is the TUN side to hand to the stack under test. Closing it (the
// stack under test does) disconnects the peer.
func (p *Peer) Device() tun.Device { return p.dev }

// Stack exposes the peer's gVisor stack, e.g. for its statistics.
func (p *Peer) Stack() *stack.Stack { return p.ip }

// Malformed counts packets written to the device that the peer's stack
// rejected: bad IP, TCP or UDP checksums, impossible lengths.
func (p *Peer) Malformed() uint64 {
	s := p.ip.Stats()
	return s.IP.MalformedPacketsReceived.Value() + s.NICs.MalformedL4RcvdPackets.Value() +
		s.TCP.ChecksumErrors.Value() + s.UDP.ChecksumErrors.Value()
}

// Inject sends a raw IP packet into the device as if the OS had routed it.
func (p *Peer) Inject(pkt []byte) error {
	if len(pkt) > maxPacket {
		return errors.New("netstacktest: packet too large")
	}
	b := p.dev.get()
	*b = append((*b)[:0], pkt...)
	return p.dev.push(b)
}

// Conn is a TCP connection from the peer.
type Conn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// Abort resets the connection (sends RST), as a crashing application would.
func (c *Conn) Abort() { c.ep.Abort() }

// DialTCP connects from the peer to dst through the device.
func (p *Peer) DialTCP(ctx context.Context, dst netip.AddrPort) (*Conn, error) {
	var wq waiter.Queue
	ep, e := p.ip.NewEndpoint(tcp.ProtocolNumber, protoOf(dst.Addr()), &wq)
	if e != nil {
		return nil, fmt.Errorf("netstacktest: new endpoint: %s", e)
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
			return nil, ctx.Err()
		}
		if e := ep.LastError(); e != nil {
			ep.Close()
			return nil, fmt.Errorf("netstacktest: connect %v: %s", dst, e)
		}
	default:
		ep.Close()
		return nil, fmt.Errorf("netstacktest: connect %v: %s", dst, e)
	}
	return &Conn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}, nil
}

// DialUDP returns a UDP socket of the peer connected to dst.
func (p *Peer) DialUDP(dst netip.AddrPort) (*gonet.UDPConn, error) {
	raddr := &tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(dst.Addr().AsSlice()), Port: dst.Port()}
	return gonet.DialUDP(p.ip, nil, raddr, protoOf(dst.Addr()))
}

// Close stops the peer's stack and its goroutines.
func (p *Peer) Close() error {
	p.close.Do(func() {
		p.dev.Close()
		p.ip.Close()
		p.ip.Wait()
		p.ip.RemoveNIC(nicID) // closes the link: the pump exits
		p.pump.Wait()
	})
	return nil
}

// deliver hands a packet written to the device to the peer's stack.
func (p *Peer) deliver(b []byte) {
	if p.opts.Drop != nil && p.opts.Drop(b) {
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	defer pkt.DecRef()
	switch header.IPVersion(b) {
	case header.IPv4Version:
		p.link.deliver(ipv4.ProtocolNumber, pkt)
	case header.IPv6Version:
		p.link.deliver(ipv6.ProtocolNumber, pkt)
	}
}

// pumpOut moves the peer's outbound packets into the device.
func (p *Peer) pumpOut() {
	defer p.pump.Done()
	for {
		pkt := p.link.next()
		if pkt == nil {
			return
		}
		b := p.dev.get()
		*b = (*b)[:pkt.Size()]
		off := 0
		for _, v := range pkt.AsSlices() {
			off += copy((*b)[off:], v)
		}
		pkt.DecRef()
		if p.dev.push(b) != nil {
			p.dev.put(b) // device closed: the packet is lost, as on a real link
		}
	}
}
