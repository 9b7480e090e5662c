package platform

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// routeOwner reads the main table (the agent's own routes live in
// routeTable). A default route is no owner: it claims every prefix.
func routeOwner(p netip.Prefix, exclude string) (string, error) {
	nl, err := netlink.NewHandle()
	if err != nil {
		return "", fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	return routeOwnerWith(nl, p, exclude)
}

func routeOwnerWith(nl *netlink.Handle, p netip.Prefix, exclude string) (string, error) {
	family := netlink.FAMILY_V4
	if p.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := nl.RouteList(nil, family)
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	for _, rt := range routes {
		if rt.Dst == nil || rt.LinkIndex == 0 {
			continue
		}
		ones, _ := rt.Dst.Mask.Size()
		if ones == 0 {
			continue
		}
		addr, ok := netip.AddrFromSlice(rt.Dst.IP)
		if !ok || !netip.PrefixFrom(addr.Unmap(), ones).Overlaps(p) {
			continue
		}
		link, err := nl.LinkByIndex(rt.LinkIndex)
		if err != nil {
			continue // gone meanwhile
		}
		if name := link.Attrs().Name; name != exclude {
			return name, nil
		}
	}
	return "", nil
}
