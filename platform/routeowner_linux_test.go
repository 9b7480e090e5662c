package platform

import (
	"net/netip"
	"testing"
)

// TestRouteOwner, as root in a namespace of its own: another VPN's device
// routing 100.64.0.0/10 owns every prefix overlapping it, but not the agent's
// own device's, nor a default route's.
func TestRouteOwner(t *testing.T) {
	n := newTestNetns(t)
	n.addVeth("othervpn") // the kernel here has no dummy devices
	n.ip("link", "set", "othervpnp", "up")
	n.ip("link", "set", "othervpn", "up")
	n.ip("route", "add", "100.64.0.0/10", "dev", "othervpn")
	n.addVeth("uplink")
	n.ip("link", "set", "uplinkp", "up")
	n.ip("link", "set", "uplink", "up")
	n.ip("addr", "add", "10.0.0.2/24", "dev", "uplink")
	n.ip("route", "add", "default", "via", "10.0.0.1")
	tests := []struct {
		prefix, exclude, want string
	}{
		{"100.64.0.0/10", "zt0", "othervpn"},
		{"100.100.0.0/16", "zt0", "othervpn"},
		{"100.0.0.0/8", "zt0", "othervpn"},
		{"100.64.0.0/10", "othervpn", ""},
		{"198.18.0.0/15", "zt0", ""},
		{"10.0.0.128/25", "zt0", "uplink"},
		{"fd00::/64", "zt0", ""},
	}
	for _, tt := range tests {
		got, err := routeOwnerWith(n.nl, netip.MustParsePrefix(tt.prefix), tt.exclude)
		if err != nil || got != tt.want {
			t.Errorf("routeOwner(%s, exclude %s) = %q, %v; want %q", tt.prefix, tt.exclude, got, err, tt.want)
		}
	}
}
