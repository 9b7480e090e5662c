package platform

import "net/netip"

// RouteOwner returns the name of an interface, other than exclude (the
// agent's own TUN device), that a route of the main routing table sends
// part of p to: another VPN that owns the prefix. It returns "" when none
// does, and on an OS where the routes are not read yet (macOS and Windows:
// the agent then keeps its configured stub range).
func RouteOwner(p netip.Prefix, exclude string) (string, error) {
	return routeOwner(p, exclude)
}
