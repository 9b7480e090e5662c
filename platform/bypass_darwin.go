package platform

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// CanBypass reports whether unsteered flows can be sent direct on this OS.
const CanBypass = true

var bypassIfaces = &ifaceCache{read: darwinDefaults, now: time.Now}

// bypassControl binds the socket to the interface of the primary default
// route (IP_BOUND_IF), so that it leaves by it even to a destination inside a
// prefix the agent routes into its utun.
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
		if dst.Unmap().Is4() {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BOUND_IF, idx)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_BOUND_IF, idx)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("bind to interface #%d: %w", idx, serr)
	}
	return nil
}

// darwinDefaults lists the default routes of one family from the routing
// socket: the unscoped one (the primary interface's) first in order, the
// interface-scoped ones after it.
func darwinDefaults(v6 bool) ([]defaultRoute, error) {
	af := unix.AF_INET
	if v6 {
		af = unix.AF_INET6
	}
	rib, err := route.FetchRIB(af, route.RIBTypeRoute, 0)
	if err != nil {
		return nil, err
	}
	msgs, err := route.ParseRIB(route.RIBTypeRoute, rib)
	if err != nil {
		return nil, err
	}
	var out []defaultRoute
	for _, m := range msgs {
		rm, ok := m.(*route.RouteMessage)
		if !ok || rm.Flags&unix.RTF_UP == 0 || rm.Flags&unix.RTF_HOST != 0 || len(rm.Addrs) <= unix.RTAX_NETMASK {
			continue
		}
		dst := ribAddr(rm.Addrs[unix.RTAX_DST])
		p, ok := ribPrefix(dst, ribMask(rm.Addrs[unix.RTAX_NETMASK], dst))
		if !ok || p.Bits() != 0 {
			continue
		}
		metric := 0
		if rm.Flags&unix.RTF_IFSCOPE != 0 {
			metric = 1
		}
		out = append(out, defaultRoute{Index: rm.Index, Metric: metric})
	}
	return out, nil
}
