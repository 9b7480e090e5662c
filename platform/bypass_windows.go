package platform

import (
	"fmt"
	"math/bits"
	"syscall"
	"time"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// CanBypass reports whether unsteered flows can be sent direct on this OS.
const CanBypass = true

// IP_UNICAST_IF and IPV6_UNICAST_IF (ws2ipdef.h).
const (
	ipUnicastIf   = 31
	ipv6UnicastIf = 31
)

var bypassIfaces = &ifaceCache{read: windowsDefaults, now: time.Now}

// bypassControl binds the socket to the interface of the default route
// (IP_UNICAST_IF), so that it leaves by it even to a destination inside a
// prefix the agent routes into its adapter.
func bypassControl(network, address string, c syscall.RawConn) error {
	dst := dialDest(address)
	idx, ok, err := bypassIfaces.primary(dst)
	if err != nil {
		return fmt.Errorf("find the interface of the default route: %w", err)
	}
	if !ok {
		return nil
	}
	var serr error
	err = c.Control(func(fd uintptr) {
		h := windows.Handle(fd)
		if dst.Unmap().Is4() {
			// IPv4 takes the index in network byte order; Windows runs
			// little-endian.
			serr = windows.SetsockoptInt(h, windows.IPPROTO_IP, ipUnicastIf, int(bits.ReverseBytes32(uint32(idx))))
			return
		}
		serr = windows.SetsockoptInt(h, windows.IPPROTO_IPV6, ipv6UnicastIf, idx)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("bind to interface #%d: %w", idx, serr)
	}
	return nil
}

// windowsDefaults lists the default routes of one family on connected
// interfaces, each with its effective metric (route plus interface).
func windowsDefaults(v6 bool) ([]defaultRoute, error) {
	family := winipcfg.AddressFamily(windows.AF_INET)
	if v6 {
		family = windows.AF_INET6
	}
	ifs, err := winipcfg.GetIPInterfaceTable(family)
	if err != nil {
		return nil, err
	}
	metric := map[uint32]int{}
	for _, i := range ifs {
		if i.Connected {
			metric[i.InterfaceIndex] = int(i.Metric)
		}
	}
	routes, err := winipcfg.GetIPForwardTable2(family)
	if err != nil {
		return nil, err
	}
	var out []defaultRoute
	for _, r := range routes {
		m, connected := metric[r.InterfaceIndex]
		if connected && r.DestinationPrefix.PrefixLength == 0 {
			out = append(out, defaultRoute{Index: int(r.InterfaceIndex), Metric: int(r.Metric) + m})
		}
	}
	return out, nil
}
