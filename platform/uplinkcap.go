package platform

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// The uplink capture (`ztdiag -p`) records the packets of the agent's own
// connections as they cross the uplink: to the PoPs, the L3E gateway, the
// tenant API, the DNS upstreams and the probes. "The agent's own" is decided
// by remote endpoint: every socket the agent dials through BypassDialer
// adds its remote address, port and protocol to a process-wide set (in the
// dialer's Control function, so before the first packet leaves), and the
// agent adds the DNS upstreams it forwards to. A capture installs a kernel
// packet filter (classic BPF) that passes only packets to or from those
// endpoints, and replaces it as the set grows (Windows, which has none
// without a driver, runs the same program in user space: vmCapture).
// Flows of other applications that the agent relays direct (DialDirect)
// are not added. What the filter
// cannot tell apart is another application talking to the very same
// endpoint (a browser on the tenant API's address and port, a program
// querying the same DNS server): those packets are captured too.

// Endpoint is a remote end of one of the agent's own connections.
type Endpoint struct {
	Proto uint8 // 6 TCP, 17 UDP
	Addr  netip.AddrPort
}

// Protocol numbers of Endpoint.Proto.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// maxOwnEndpoints bounds the set (and so the filter program: the kernels
// take at most 4096 instructions); past it the endpoint dialed least
// recently goes.
const maxOwnEndpoints = 128

// ErrUplinkCaptureUnsupported is OpenUplinkCapture's answer on an OS where
// the agent cannot capture its uplink.
var ErrUplinkCaptureUnsupported = errors.New("uplink capture is not supported on this OS")

// UplinkCapture reads the packets of a set of endpoints on the uplink.
type UplinkCapture interface {
	// SetEndpoints replaces the endpoints whose packets are read.
	SetEndpoints(eps []Endpoint) error
	// ReadPacket reads the next packet, from its IP header on, into buf: n
	// bytes of it are in buf, origLen is its length on the wire. It returns
	// net.ErrClosed once Close was called.
	ReadPacket(buf []byte) (n, origLen int, err error)
	// Interface names where it captures (all interfaces: "any").
	Interface() string
	Close() error
}

// ownEndpoints is the process's set of the agent's own remote endpoints.
var ownEndpoints = &endpointSet{m: make(map[Endpoint]time.Time)}

type endpointSet struct {
	mu    sync.Mutex
	m     map[Endpoint]time.Time // last added
	watch func([]Endpoint)       // called, under mu, when the set changes
}

// AddOwnEndpoint adds ep to the agent's own endpoints.
func AddOwnEndpoint(ep Endpoint) {
	ownEndpoints.add(ep, time.Now())
}

// OwnEndpoints lists the agent's own endpoints.
func OwnEndpoints() []Endpoint {
	s := ownEndpoints
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}

// WatchOwnEndpoints calls f with the whole set now and whenever it changes,
// until the function returned is called. One watcher at a time: a second
// replaces the first. f runs with the set locked, before the dial that added
// an endpoint goes on, so that a capture filter passes its first packet.
func WatchOwnEndpoints(f func([]Endpoint)) (stop func()) {
	s := ownEndpoints
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watch = f
	f(s.listLocked())
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.watch = nil
	}
}

func (s *endpointSet) add(ep Endpoint, now time.Time) {
	ep.Addr = netip.AddrPortFrom(ep.Addr.Addr().Unmap().WithZone(""), ep.Addr.Port())
	if !ep.Addr.IsValid() || ep.Addr.Port() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.m[ep]
	s.m[ep] = now
	if had {
		return
	}
	for len(s.m) > maxOwnEndpoints {
		var oldest Endpoint
		var at time.Time
		for e, t := range s.m {
			if at.IsZero() || t.Before(at) {
				oldest, at = e, t
			}
		}
		delete(s.m, oldest)
	}
	if s.watch != nil {
		s.watch(s.listLocked())
	}
}

func (s *endpointSet) listLocked() []Endpoint {
	eps := make([]Endpoint, 0, len(s.m))
	for e := range s.m {
		eps = append(eps, e)
	}
	slices.SortFunc(eps, func(a, b Endpoint) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return int(a.Proto) - int(b.Proto)
	})
	return eps
}

// noteOwnDial is the part of BypassDialer's Control function that adds the
// socket's remote end, given as the dialer gives it (network "tcp4", address
// "192.0.2.1:443").
func noteOwnDial(network, address string) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return
	}
	switch {
	case strings.HasPrefix(network, "tcp"):
		AddOwnEndpoint(Endpoint{Proto: ProtoTCP, Addr: ap})
	case strings.HasPrefix(network, "udp"):
		AddOwnEndpoint(Endpoint{Proto: ProtoUDP, Addr: ap})
	}
}
