package platform

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Owner identifies the process owning a local socket: what the steering
// engine's certificate-pinned-app exceptions match a flow on.
type Owner struct {
	PID int
	// UID is the process's real user ID; -1 where the OS has none (Windows).
	UID int
	// Process is the process name, e.g. "chrome": the executable's base name
	// (without ".exe" on Windows), or the kernel's name for it where the
	// executable is unreadable.
	Process string
	// Path is the executable's absolute path; "" when the OS would not say.
	Path string
	// AppID is the bundle or package ID where the OS has one (a macOS
	// CFBundleIdentifier); "" otherwise.
	AppID string
}

// OwnerLookup finds the process that owns a socket of this machine. local is
// the socket's own address (the client side of a flow leaving the machine);
// remote is its peer, or the zero AddrPort when unknown. For "udp", an
// unconnected socket bound to local's port on the wildcard address also
// matches. Implementations are safe for concurrent use.
type OwnerLookup interface {
	Lookup(proto string, local, remote netip.AddrPort) (Owner, error)
}

// ErrOwnerNotFound is returned (wrapped) when no process of this machine holds
// a matching socket: the socket closed, belongs to another network namespace,
// or the OS does not expose it to the agent.
var ErrOwnerNotFound = errors.New("socket owner not found")

// Match ranks, best last. A TCP socket only matches its exact local address;
// a UDP one may be unconnected or bound to the wildcard address.
const (
	rankNone     = iota
	rankWildcard // UDP bound to 0.0.0.0 or :: on the port
	rankLocal    // exact local address, any (or unknown) peer
	rankExact    // exact local and remote
)

// sockMatcher ranks the rows of an OS socket table against one flow.
type sockMatcher struct {
	udp           bool
	local, remote netip.AddrPort // unmapped and unzoned; remote may be zero
}

func newSockMatcher(proto string, local, remote netip.AddrPort) (sockMatcher, error) {
	var m sockMatcher
	switch proto {
	case "tcp":
	case "udp":
		m.udp = true
	default:
		return m, fmt.Errorf("socket owner: unknown protocol %q", proto)
	}
	if !local.IsValid() || local.Port() == 0 || local.Addr().IsUnspecified() {
		return m, fmt.Errorf("socket owner: bad local address %v", local)
	}
	m.local = plainAddrPort(local)
	if remote.IsValid() && remote.Port() != 0 && !remote.Addr().IsUnspecified() {
		m.remote = plainAddrPort(remote)
	}
	return m, nil
}

// plainAddrPort drops the IPv6 zone and the IPv4-mapped form, so that a socket
// listed as ::ffff:10.0.0.1 compares equal to the flow's 10.0.0.1.
func plainAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// best is the highest rank a row can reach for m: finding it ends a scan.
func (m sockMatcher) best() int {
	if m.remote.IsValid() {
		return rankExact
	}
	return rankLocal
}

// rank scores one socket-table row. rowRemote is the zero or unspecified
// AddrPort for a listening or unconnected socket.
func (m sockMatcher) rank(rowLocal, rowRemote netip.AddrPort) int {
	if rowLocal.Port() != m.local.Port() {
		return rankNone
	}
	la := rowLocal.Addr().Unmap().WithZone("")
	unconnected := !rowRemote.IsValid() || rowRemote.Port() == 0
	if la != m.local.Addr() {
		// A wildcard IPv6 socket takes IPv4 too unless IPV6_V6ONLY is set,
		// which the tables do not show; accepting it can only name the one
		// process bound to the port.
		if m.udp && unconnected && la.IsUnspecified() && (la.Is6() || m.local.Addr().Is4()) {
			return rankWildcard
		}
		return rankNone
	}
	switch {
	case !m.remote.IsValid():
		return rankLocal
	case !unconnected && plainAddrPort(rowRemote) == m.remote:
		return rankExact
	case m.udp && unconnected:
		return rankLocal
	}
	return rankNone
}

// sockRow is one parsed OS socket-table row. Linux tables name the socket's
// inode; Windows and lsof name the owning process.
type sockRow struct {
	Local, Remote netip.AddrPort
	Inode         uint64
	PID           int
	UID           int
}

// bestRow returns the first row of the highest rank, or false.
func (m sockMatcher) bestRow(rows []sockRow) (sockRow, bool) {
	var best sockRow
	bestRank := rankNone
	for _, r := range rows {
		if k := m.rank(r.Local, r.Remote); k > bestRank {
			best, bestRank = r, k
			if k == m.best() {
				break
			}
		}
	}
	return best, bestRank != rankNone
}

// ttlCache is a small map whose entries expire. When full it drops expired
// entries and then, if still full, everything: the caches it serves are
// refilled cheaply compared with running unbounded.
type ttlCache[K comparable, V any] struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	now func() time.Time
	m   map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration, max int) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, max: max, now: time.Now, m: make(map[K]ttlEntry[V])}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
}

func (c *ttlCache[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

// keys returns the live keys, in no order.
func (c *ttlCache[K, V]) keys() []K {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := make([]K, 0, len(c.m))
	for k, e := range c.m {
		if now.Before(e.expires) {
			out = append(out, k)
		}
	}
	return out
}

// How long the process behind a PID is trusted to stay the same: PIDs are
// reused, but not within seconds on any real system.
const (
	ownerTTL       = 3 * time.Second
	ownerCacheSize = 1024
)
