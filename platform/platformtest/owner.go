package platformtest

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/ztagent/ztagent/platform"
)

// Owners is a fake platform.OwnerLookup: a test says which process owns the
// socket at a local address. As on a real OS, a UDP owner set on the wildcard
// address (0.0.0.0 or ::) owns that port on every address, and the remote
// address is not consulted. The zero value is ready; it is safe for
// concurrent use.
type Owners struct {
	mu      sync.Mutex
	socks   map[ownerKey]platform.Owner
	err     error
	lookups int
}

type ownerKey struct {
	proto string
	local netip.AddrPort
}

var _ platform.OwnerLookup = (*Owners)(nil)

func ownerKeyOf(proto string, local netip.AddrPort) ownerKey {
	return ownerKey{proto, netip.AddrPortFrom(local.Addr().Unmap().WithZone(""), local.Port())}
}

// Set makes owner the owner of the proto ("tcp" or "udp") socket at local.
func (o *Owners) Set(proto string, local netip.AddrPort, owner platform.Owner) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.socks == nil {
		o.socks = make(map[ownerKey]platform.Owner)
	}
	o.socks[ownerKeyOf(proto, local)] = owner
}

// Remove forgets the socket at local, as when it closes.
func (o *Owners) Remove(proto string, local netip.AddrPort) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.socks, ownerKeyOf(proto, local))
}

// Fail makes Lookup return err until Fail(nil).
func (o *Owners) Fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.err = err
}

// Lookups counts the calls to Lookup, for tests of callers' caching.
func (o *Owners) Lookups() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lookups
}

// Lookup implements platform.OwnerLookup. A socket nobody owns is
// platform.ErrOwnerNotFound, wrapped.
func (o *Owners) Lookup(proto string, local, remote netip.AddrPort) (platform.Owner, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lookups++
	if proto != "tcp" && proto != "udp" {
		return platform.Owner{}, fmt.Errorf("socket owner: unknown protocol %q", proto)
	}
	if o.err != nil {
		return platform.Owner{}, o.err
	}
	if owner, ok := o.socks[ownerKeyOf(proto, local)]; ok {
		return owner, nil
	}
	if proto == "udp" {
		for _, wild := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
			if wild.Is4() && !local.Addr().Unmap().Is4() {
				continue
			}
			if owner, ok := o.socks[ownerKeyOf(proto, netip.AddrPortFrom(wild, local.Port()))]; ok {
				return owner, nil
			}
		}
	}
	return platform.Owner{}, fmt.Errorf("%w: no %s socket at %v", platform.ErrOwnerNotFound, proto, local)
}
