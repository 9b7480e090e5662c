package platform

import (
	"net/netip"
	"sync"
	"time"
)

// On Windows and macOS the agent's own sockets are bound to the interface
// of the default route (IP_UNICAST_IF, IP_BOUND_IF), the way WireGuard and
// Tailscale keep their own traffic out of their tunnels: a bound socket
// leaves by that interface whatever routes the agent added. This is the pure
// half: which default route is the primary one, and a short-lived cache of
// the answer, so that a burst of dials reads the routing table once.

// defaultRoute is a default route of one family as the OS reports it.
type defaultRoute struct {
	Index int // interface index
	// Metric orders the candidates, lowest first: on Windows the route
	// metric plus the interface metric; on macOS 0 for the unscoped
	// (primary) default and 1 for the scoped ones.
	Metric int
}

// primaryInterface is the index of the interface of the best default route,
// ok false when there is none. Ties go to the first listed.
func primaryInterface(routes []defaultRoute) (index int, ok bool) {
	best := -1
	for i, r := range routes {
		if r.Index > 0 && (best < 0 || r.Metric < routes[best].Metric) {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	return routes[best].Index, true
}

// bypassTTL is how long a primary interface is trusted before the routing
// table is read again: a moved default route is followed within it.
const bypassTTL = 2 * time.Second

// ifaceCache remembers the primary interface per family for bypassTTL.
type ifaceCache struct {
	read func(v6 bool) ([]defaultRoute, error) // the OS half
	now  func() time.Time

	mu   sync.Mutex
	at   [2]time.Time
	idx  [2]int
	have [2]bool
}

// primary returns the interface the agent's sockets to dst bind to; ok is
// false when they should not be bound (dst is on this machine, or there is
// no default route of its family).
func (c *ifaceCache) primary(dst netip.Addr) (int, bool, error) {
	dst = dst.Unmap()
	if !dst.IsValid() || dst.IsLoopback() || dst.IsUnspecified() {
		return 0, false, nil
	}
	fam := 0
	if dst.Is6() {
		fam = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.at[fam].IsZero() && now.Sub(c.at[fam]) < bypassTTL {
		return c.idx[fam], c.have[fam], nil
	}
	routes, err := c.read(fam == 1)
	if err != nil {
		return 0, false, err
	}
	c.idx[fam], c.have[fam] = primaryInterface(routes)
	c.at[fam] = now
	return c.idx[fam], c.have[fam], nil
}

// dialDest is the address a dialer's Control function is given, as an
// address; the zero Addr when it is not an IP address and port.
func dialDest(address string) netip.Addr {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}
