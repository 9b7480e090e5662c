// Package netstack terminates the TCP and UDP flows that the operating system
// routes into the agent's TUN device, using gVisor's userspace TCP/IP stack.
//
// The stack runs in promiscuous and spoofing mode, so it accepts a flow to any
// destination the OS sends into the TUN (stub addresses from 100.64.0.0/10 as
// well as the real prefixes of private apps) and answers as that destination.
// Every new TCP flow is offered to a TCPHandler before the handshake
// completes: the handler opens the upstream (a tunnel stream) and, if that is
// refused, the client's SYN is answered with a RST, so applications see
// "connection refused" at once instead of a connection that hangs. Accepted
// flows are relayed byte for byte with half-close and resets carried across.
// UDP flows (one per 4-tuple, closed after an idle timeout, at most
// MaxUDPFlows at once, the one idle longest closed to make room) go to a UDPHandler,
// which may refuse one with an ICMP destination unreachable that this
// package builds (gVisor's stack sends such errors only for its own reasons).
// ICMP echo requests never reach gVisor, which would answer them itself: they
// go to an EchoHandler, which answers with the real host's reply or not at
// all.
package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// IP protocol numbers used in Flow.Proto.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// Flow identifies one transport flow as the client sees it: Src is the
// application's socket, Dst the address it connected to (a stub or real
// address routed into the TUN).
type Flow struct {
	Proto    uint8
	Src, Dst netip.AddrPort
}

func (f Flow) String() string {
	p := "tcp"
	if f.Proto == ProtoUDP {
		p = "udp"
	}
	return p + " " + f.Src.String() + "->" + f.Dst.String()
}

// TCPHandler opens the upstream for a new TCP flow. It is called on its own
// goroutine before the client's SYN is answered; returning an error resets
// the client's connection. ctx is cancelled when the Stack closes or after
// 30 s (the client has given up by then); the handler must return promptly
// once it is, as Close waits for it. If the returned conn has a CloseWrite
// method, the client's FIN is carried to it as a half-close; otherwise the
// upstream sees the close only when both directions are done. If it has
// SetLinger (like *net.TCPConn), a client reset is passed on as a reset.
// Closing the conn must unblock its Read, as the net.Conn contract says. An
// idle flow holds no copy buffer when the conn can wait for data without one:
// a socket, or a conn with a WaitRead method (flowio.ReadWaiter).
type TCPHandler func(ctx context.Context, f Flow) (net.Conn, error)

// DatagramConn is a bidirectional datagram pipe for one UDP flow. Each Write
// carries one datagram from the client upstream; each Read returns one
// datagram for the client (a datagram longer than the buffer is truncated).
// Close must unblock a pending Read. A connected *net.UDPConn satisfies it.
type DatagramConn interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

// UDPHandler opens the upstream for a new UDP flow, on its own goroutine,
// with the same ctx rules as TCPHandler. Datagrams the client sends while it
// runs are queued in the stack (up to its receive buffer). An error wrapping
// ErrPortUnreachable or ErrProhibited refuses the flow: its first datagram
// is answered with that ICMP destination unreachable. Any other error drops
// the flow silently; the next datagram of the 4-tuple tries again.
type UDPHandler func(ctx context.Context, f Flow) (DatagramConn, error)

// Config configures a Stack. TCP is required; without a UDP handler every
// UDP datagram is answered with ICMP port unreachable.
type Config struct {
	// MTU of the stack's interface; 0 uses the device's MTU.
	MTU int
	// Log receives the stack's logs; nil discards them.
	Log *zap.Logger
	TCP TCPHandler
	UDP UDPHandler
	// Echo receives the ICMP echo requests (see echo.go); nil drops them.
	Echo EchoHandler
	// MaxInFlightSYN bounds the TCP flows whose handler is still running
	// (a SYN is answered once its handler returns); further SYNs are
	// dropped, which the client retransmits after a second or more, and
	// counted in Stats.SYNDropped. It bounds UDP flows being opened the
	// same way (their first datagram is dropped). A SYN in flight holds a
	// goroutine and the handler's work, about 10 KiB: the default, 16384,
	// takes a burst of 10,000 connects at once (a smaller bound admits
	// only that many per round of synchronized retransmissions) and caps
	// what a SYN flood can pin at ~160 MiB. 0 means the default.
	MaxInFlightSYN int
	// IdleUDP closes a UDP flow after this long without a datagram in either
	// direction. 0 means 2 minutes. SetIdleUDP changes it.
	IdleUDP time.Duration
	// MaxUDPFlows bounds the UDP flows (4-tuples) relayed at once; a new
	// flow beyond it evicts the one idle longest, counted in
	// Stats.UDPEvicted. 0 means 8192.
	MaxUDPFlows int
}

const (
	nicID                 = 1
	minMTU, maxMTU        = 1280, 65535
	defaultMaxInFlightSYN = 16384
	defaultIdleUDP        = 2 * time.Minute
	defaultMaxUDPFlows    = 8192
	// handlerTimeout bounds how long a TCP handler may take: past it a
	// client has long given up on its SYN retransmissions.
	handlerTimeout = 30 * time.Second
)

// Stats are cumulative counters and current gauges of a Stack.
type Stats struct {
	TCPOpen, UDPOpen        int64 // flows currently relayed
	TCPTotal, UDPTotal      int64 // flows accepted by a handler
	TCPRefused, UDPRefused  int64 // handler errors; for UDP also flows dropped at the open limit
	UDPExpired              int64 // UDP flows closed by the idle timeout
	UDPEvicted              int64 // UDP flows closed for room at MaxUDPFlows
	UDPDropped              int64 // datagrams of open flows dropped: one side refused them (too large, …)
	SYNDropped              int64 // SYNs dropped because MaxInFlightSYN was reached
	PacketsIn, PacketsOut   int64 // packets read from / written to the TUN
	DroppedIn, DroppedOut   int64 // malformed or bad-checksum inbound packets; failed writes
	TUNReadErrs, BadVersion int64 // device read errors (incl. too many segments); non-IP packets
	EchoDropped             int64 // ICMP echo requests dropped unanswered here: no handler, malformed, fragmented (see echo.go)
}

type counters struct {
	tcpOpen, udpOpen, tcpTotal, udpTotal    atomic.Int64
	tcpRefused, udpRefused, udpExpired      atomic.Int64
	udpEvicted, udpDropped                  atomic.Int64
	packetsIn, packetsOut                   atomic.Int64
	droppedIn, droppedOut, readErrs, badVer atomic.Int64
	echoDropped                             atomic.Int64
}

// Stack bridges one TUN device to a gVisor stack.
type Stack struct {
	log  *zap.Logger
	cfg  Config
	dev  tun.Device
	ip   *stack.Stack
	link *linkEndpoint
	mtu  int

	ctx    context.Context // cancelled by Close; parent of every handler
	cancel context.CancelFunc
	stats  counters

	udpPending   chan struct{} // semaphore: UDP flows whose handler runs
	udpFlows     udpTable      // UDP flows relayed, bounded
	idleUDPNanos atomic.Int64  // the UDP idle timeout (SetIdleUDP)
	// idleChanged is closed (and replaced) when SetIdleUDP changes the
	// timeout, so that idle flows re-check theirs.
	idleChanged  atomic.Pointer[chan struct{}]
	lastWErr     atomic.Int64        // unix nanos of the last logged write error
	lastEvictLog atomic.Int64        // unix nanos of the last logged eviction
	tap          atomic.Pointer[Tap] // sees the TUN's packets (SetTap); nil when none

	mu     sync.Mutex
	closed bool
	flows  map[*relay]struct{} // open flows, aborted by Close
	// handshakes are the waiter queues of handshakes in progress: a wakeup
	// makes gVisor give up on the handshake, so Close need not wait for the
	// SYN-ACK retransmissions to a client that never answers.
	handshakes map[*waiter.Queue]struct{}
	wg         sync.WaitGroup // handler and relay goroutines

	ioWG      sync.WaitGroup // TUN reader, writer and event goroutines
	closeOnce sync.Once
	closeErr  error
}

// enableGSO lets gVisor build TCP segments up to 64 KiB that the writer
// splits; enableGRO merges inbound segments before gVisor sees them.
// Benchmarks turn them off to measure what they are worth.
var enableGSO, enableGRO = true, true

// New builds the stack on dev and starts reading and writing it. On success
// New takes ownership of dev: Close closes it, since closing is the only way
// to interrupt a blocked tun.Device.Read. On error dev is left open.
func New(dev tun.Device, cfg Config) (*Stack, error) {
	if cfg.TCP == nil {
		return nil, errors.New("netstack: Config.TCP handler is required")
	}
	cfg = cfg.withDefaults()
	mtu, err := resolveMTU(dev, cfg.MTU)
	if err != nil {
		return nil, err
	}
	s := &Stack{
		log:   cfg.Log.Named("netstack"),
		cfg:   cfg,
		dev:   dev,
		mtu:   mtu,
		flows: make(map[*relay]struct{}),

		handshakes: make(map[*waiter.Queue]struct{}),

		udpPending: make(chan struct{}, cfg.MaxInFlightSYN),
		udpFlows:   udpTable{max: cfg.MaxUDPFlows},
	}
	s.idleUDPNanos.Store(int64(cfg.IdleUDP))
	changed := make(chan struct{})
	s.idleChanged.Store(&changed)
	gso := stack.GSONotSupported
	if enableGSO {
		gso = stack.HostGSOSupported
	}
	s.link = newLinkEndpoint(uint32(mtu), linkQueueLen, gso)
	ip, err := newIPStack(s.link)
	if err != nil {
		return nil, err
	}
	s.ip = ip
	s.ctx, s.cancel = context.WithCancel(context.Background())

	tcpFwd := tcp.NewForwarder(ip, 0, cfg.MaxInFlightSYN, s.acceptTCP)
	ip.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	if cfg.UDP != nil {
		// Without a handler gVisor answers UDP with ICMP port unreachable,
		// which clients report as "connection refused".
		ip.SetTransportProtocolHandler(udp.ProtocolNumber, s.handleUDP)
	}

	batch := max(dev.BatchSize(), 1)
	s.ioWG.Add(2)
	go s.readLoop(batch)
	go s.writeLoop(batch)
	if ev := dev.Events(); ev != nil {
		s.ioWG.Add(1)
		go s.eventLoop(ev)
	}
	s.log.Info("started", zap.Int("mtu", mtu), zap.Int("batch", batch))
	return s, nil
}

func (cfg Config) withDefaults() Config {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.MaxInFlightSYN <= 0 {
		cfg.MaxInFlightSYN = defaultMaxInFlightSYN
	}
	if cfg.IdleUDP <= 0 {
		cfg.IdleUDP = defaultIdleUDP
	}
	if cfg.MaxUDPFlows <= 0 {
		cfg.MaxUDPFlows = defaultMaxUDPFlows
	}
	return cfg
}

// resolveMTU returns the configured MTU, or the device's when none is.
func resolveMTU(dev tun.Device, mtu int) (int, error) {
	if mtu <= 0 {
		m, err := dev.MTU()
		if err != nil {
			return 0, fmt.Errorf("netstack: device MTU: %w", err)
		}
		mtu = m
	}
	if mtu < minMTU || mtu > maxMTU {
		return 0, fmt.Errorf("netstack: MTU %d out of range [%d, %d]", mtu, minMTU, maxMTU)
	}
	return mtu, nil
}

// newIPStack creates the gVisor stack with one NIC that accepts and answers
// for every address, tuned for throughput.
func newIPStack(link *linkEndpoint) (*stack.Stack, error) {
	ip := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	fail := func(what string, e tcpip.Error) (*stack.Stack, error) {
		ip.Destroy()
		return nil, fmt.Errorf("netstack: %s: %s", what, e)
	}
	for _, o := range tcpOptions() {
		if e := ip.SetTransportProtocolOption(tcp.ProtocolNumber, o.opt); e != nil {
			return fail(o.name, e)
		}
	}
	if e := ip.CreateNIC(nicID, link); e != nil {
		return fail("create NIC", e)
	}
	// Promiscuous: deliver packets for any destination to the transport layer.
	// Spoofing: send replies from that destination address.
	if e := ip.SetPromiscuousMode(nicID, true); e != nil {
		return fail("promiscuous mode", e)
	}
	if e := ip.SetSpoofing(nicID, true); e != nil {
		return fail("spoofing", e)
	}
	ip.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	return ip, nil
}

type namedOpt struct {
	name string
	opt  tcpip.SettableTransportProtocolOption
}

// TCP buffer sizes: gVisor starts each connection at Default and, with
// receive-buffer moderation, grows the advertised window up to Max. 8 MiB is
// enough for several Gbit/s at the sub-millisecond RTT of a local TUN.
const (
	tcpBufMin   = 4 << 10
	tcpRXBufDef = 1 << 20
	tcpRXBufMax = 8 << 20
	tcpTXBufDef = 1 << 20
	tcpTXBufMax = 8 << 20
)

func tcpOptions() []namedOpt {
	sack := tcpip.TCPSACKEnabled(true)
	// gVisor's RACK loss detection misbehaves under load (Tailscale found
	// spurious retransmits, tailscale/tailscale#9707); plain SACK recovery.
	recovery := tcpip.TCPRecovery(0)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	cc := tcpip.CongestionControlOption("reno")
	rx := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcpBufMin, Default: tcpRXBufDef, Max: tcpRXBufMax}
	tx := tcpip.TCPSendBufferSizeRangeOption{Min: tcpBufMin, Default: tcpTXBufDef, Max: tcpTXBufMax}
	return []namedOpt{
		{"TCP SACK", &sack},
		{"TCP recovery", &recovery},
		{"TCP receive buffer moderation", &moderate},
		{"TCP congestion control", &cc},
		{"TCP receive buffer", &rx},
		{"TCP send buffer", &tx},
	}
}

// Stats returns a snapshot of the stack's counters.
func (s *Stack) Stats() Stats {
	c := &s.stats
	return Stats{
		TCPOpen:     c.tcpOpen.Load(),
		UDPOpen:     c.udpOpen.Load(),
		TCPTotal:    c.tcpTotal.Load(),
		UDPTotal:    c.udpTotal.Load(),
		TCPRefused:  c.tcpRefused.Load(),
		UDPRefused:  c.udpRefused.Load(),
		UDPExpired:  c.udpExpired.Load(),
		UDPEvicted:  c.udpEvicted.Load(),
		UDPDropped:  c.udpDropped.Load(),
		SYNDropped:  int64(s.ip.Stats().TCP.ForwardMaxInFlightDrop.Value()),
		PacketsIn:   c.packetsIn.Load(),
		PacketsOut:  c.packetsOut.Load(),
		DroppedIn:   c.droppedIn.Load(),
		DroppedOut:  c.droppedOut.Load(),
		TUNReadErrs: c.readErrs.Load(),
		BadVersion:  c.badVer.Load(),
		EchoDropped: c.echoDropped.Load(),
	}
}

// MTU returns the MTU of the stack's interface: the configured one, or the
// device's as it last changed.
func (s *Stack) MTU() int { return int(s.link.MTU()) }

// SetIdleUDP sets the UDP idle timeout (0 or less: the default) for every
// flow, open ones included: idle flows re-check theirs at once.
func (s *Stack) SetIdleUDP(d time.Duration) {
	if d <= 0 {
		d = defaultIdleUDP
	}
	if s.idleUDPNanos.Swap(int64(d)) == int64(d) {
		return
	}
	changed := make(chan struct{})
	close(*s.idleChanged.Swap(&changed))
}

func (s *Stack) idleUDP() time.Duration { return time.Duration(s.idleUDPNanos.Load()) }

// startFlow registers a goroutine that serves a flow. It reports false once
// Close has begun, so that Close's wait covers every goroutine it admits.
func (s *Stack) startFlow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// track registers an open flow for Close to abort; false once closed.
func (s *Stack) track(r *relay) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.flows[r] = struct{}{}
	return true
}

func (s *Stack) untrack(r *relay) {
	s.mu.Lock()
	delete(s.flows, r)
	s.mu.Unlock()
}

// Close stops the stack. Order: refuse new flows and cancel pending handlers;
// abort open flows (clients get a RST while the TUN still works) and wait for
// their goroutines; close the gVisor stack and wait for its workers; remove
// the NIC, which closes the outbound queue, and let the writer drain it; close
// the device, which ends the reader. Close is idempotent; every call returns
// after the teardown has finished.
func (s *Stack) Close() error {
	s.closeOnce.Do(s.close)
	return s.closeErr
}

func (s *Stack) close() {
	s.mu.Lock()
	s.closed = true
	s.cancel()
	flows := make([]*relay, 0, len(s.flows))
	for r := range s.flows {
		flows = append(flows, r)
	}
	s.mu.Unlock()

	for _, r := range flows {
		r.abort()
	}
	// gVisor's TCP forwarder starts each acceptTCP goroutine itself. One
	// started just before this point may still be between its start and
	// startFlow; it finds the stack closed, resets its SYN and exits at once,
	// but Close cannot wait for it.
	s.waitFlows()

	s.ip.Close()
	s.ip.Wait()
	s.ip.RemoveNIC(nicID) // closes s.link: the writer drains and exits
	s.closeErr = s.dev.Close()
	s.ioWG.Wait()
	s.log.Info("closed", zap.Int64("tcp_total", s.stats.tcpTotal.Load()), zap.Int64("udp_total", s.stats.udpTotal.Load()))
}

// waitFlows waits for the flow goroutines, waking handshakes in progress
// until they have all given up. The wakeup is repeated because a handshake
// registers its waiter only once gVisor has started it.
func (s *Stack) waitFlows() {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for wq := range s.handshakes {
			wq.Notify(waiter.WritableEvents)
		}
		s.mu.Unlock()
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// logWriteErr logs a TUN write failure at most once a second.
func (s *Stack) logWriteErr(err error) {
	now := time.Now().UnixNano()
	last := s.lastWErr.Load()
	if now-last < int64(time.Second) || !s.lastWErr.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("TUN write failed", zap.Error(err))
}
