package platform

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestNetState(t *testing.T) {
	names := map[int]string{1: "lo", 2: "eth0", 3: "eth1", 9: "zt0"}
	cidr := func(s string) *net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	prefix := func(s string) *net.IPNet {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	addrs := []netlink.Addr{
		{IPNet: cidr("127.0.0.1/8"), LinkIndex: 1},
		{IPNet: cidr("10.10.0.2/24"), LinkIndex: 2},
		{IPNet: cidr("fe80::1/64"), LinkIndex: 2},
		{IPNet: cidr("100.64.0.1/32"), LinkIndex: 9},
	}
	routes := []netlink.Route{
		{Gw: net.ParseIP("10.10.0.1"), LinkIndex: 2},
		{Dst: prefix("10.10.0.0/24"), LinkIndex: 2, Src: net.ParseIP("10.10.0.2")},
		{Dst: prefix("fe80::/64"), LinkIndex: 2},
		{Dst: prefix("100.64.0.0/10"), LinkIndex: 9},
	}
	ignore := map[string]bool{"zt0": true}
	base := netState(names, addrs, routes, ignore)
	want := "addr eth0 10.10.0.2/24; route 10.10.0.0/24 via <nil> dev eth0 src 10.10.0.2 metric 0; route default via 10.10.0.1 dev eth0 src <nil> metric 0"
	if base != want {
		t.Fatalf("netState:\n got %s\nwant %s", base, want)
	}

	for _, tc := range []struct {
		name    string
		addrs   []netlink.Addr
		routes  []netlink.Route
		changed bool
	}{
		{"the agent's own routes and addresses", append(addrs, netlink.Addr{IPNet: cidr("100.64.0.2/32"), LinkIndex: 9}),
			append(routes, netlink.Route{Dst: prefix("10.20.0.0/24"), LinkIndex: 9}), false},
		{"a link-local address", append(addrs, netlink.Addr{IPNet: cidr("fe80::2/64"), LinkIndex: 3}), routes, false},
		{"the same entries in another order", []netlink.Addr{addrs[3], addrs[2], addrs[1], addrs[0]}, []netlink.Route{routes[3], routes[2], routes[1], routes[0]}, false},
		{"default route on another uplink", addrs, append([]netlink.Route{{Gw: net.ParseIP("10.30.0.1"), LinkIndex: 3}}, routes[1:]...), true},
		{"address gone", addrs[2:], routes, true},
		{"address added", append(addrs, netlink.Addr{IPNet: cidr("10.30.0.2/24"), LinkIndex: 3}), routes, true},
		{"a route of a VPN", addrs, append(routes, netlink.Route{Dst: prefix("10.99.0.0/16"), LinkIndex: 3}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := netState(names, tc.addrs, tc.routes, ignore)
			if (got != base) != tc.changed {
				t.Errorf("changed = %v, want %v:\n%s", got != base, tc.changed, got)
			}
		})
	}
}
