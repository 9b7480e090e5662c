//go:build darwin || windows

package platform

import (
	"fmt"
	"net"
)

// uplinkInterface is the interface of the family's best default route (the
// one the bypass binds to), read from the routing table now: a capture
// starts seldom, and must not take a cached answer. It is nil, with no
// error, when the family has no default route.
func uplinkInterface(v6 bool) (*net.Interface, error) {
	routes, err := bypassIfaces.read(v6)
	if err != nil {
		return nil, fmt.Errorf("find the default route: %w", err)
	}
	idx, ok := primaryInterface(routes)
	if !ok {
		return nil, nil
	}
	return net.InterfaceByIndex(idx)
}
