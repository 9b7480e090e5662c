package platform

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// UplinkMTU returns the MTU of the interface by which the OS would send to
// address ("host:port"), outside the agent's TUN device: the uplink that the
// agent's tunnel to that address takes. It connects a UDP socket, which
// chooses the route and source address without sending anything, and finds
// the interface holding that source address.
func UplinkMTU(ctx context.Context, address string) (int, error) {
	c, err := DialDirect(ctx, "udp", address) // sends nothing: not one of the agent's endpoints
	if err != nil {
		return 0, fmt.Errorf("uplink to %s: %w", address, err)
	}
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	c.Close()
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("uplink to %s: list interfaces: %w", address, err)
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		if hasAddr(addrs, src) {
			return ifc.MTU, nil
		}
	}
	return 0, fmt.Errorf("uplink to %s: no interface has the source address %s", address, src)
}

func hasAddr(addrs []net.Addr, a netip.Addr) bool {
	for _, na := range addrs {
		if n, ok := na.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}
