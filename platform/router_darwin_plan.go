package platform

import (
	"fmt"
	"net/netip"
	"strings"
)

// The pure half of the macOS router (router_darwin.go): the ifconfig(8) and
// route(8) command for each change, the way wg-quick does it on macOS, which
// outputs mean the change was made already, and the prefixes of routing
// socket entries. Tested on any OS.

// darwinCommand is the command that makes op on macOS.
func darwinCommand(op routerOp) ([]string, error) {
	dev := op.Link.Name
	switch op.Kind {
	case opAddrAdd:
		if op.Addr.Addr().Is4() { // utun is point to point: the peer is itself
			return []string{"/sbin/ifconfig", dev, "inet", op.Addr.String(), op.Addr.Addr().String(), "alias"}, nil
		}
		return []string{"/sbin/ifconfig", dev, "inet6", op.Addr.String(), "alias"}, nil
	case opAddrDel:
		return []string{"/sbin/ifconfig", dev, inetFlag(op.Addr), op.Addr.Addr().String(), "-alias"}, nil
	case opLinkUp:
		return []string{"/sbin/ifconfig", dev, "up"}, nil
	case opLinkDown:
		return []string{"/sbin/ifconfig", dev, "down"}, nil
	case opRouteAdd, opRouteDel:
		verb := "add"
		if op.Kind == opRouteDel {
			verb = "delete"
		}
		return []string{"/sbin/route", "-q", "-n", verb, "-" + inetFlag(op.Route.Dst), op.Route.Dst.String(),
			"-interface", dev}, nil
	}
	return nil, fmt.Errorf("%s: not a change the macOS router makes", op)
}

func inetFlag(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "inet"
	}
	return "inet6"
}

// darwinAlreadyDone reports whether a failed command's output says that op
// is in force already: the route is there (adding) or gone (removing), the
// address gone (removing).
func darwinAlreadyDone(op routerOp, output string) bool {
	switch op.Kind {
	case opRouteAdd:
		return strings.Contains(output, "File exists")
	case opRouteDel:
		return strings.Contains(output, "not in table")
	case opAddrDel:
		return strings.Contains(output, "Can't assign requested address")
	}
	return false
}

// ribPrefix is the destination of a routing socket entry: dst with the
// netmask mask (nil for a host route). A mask that is not contiguous is no
// prefix the agent adds.
func ribPrefix(dst netip.Addr, mask []byte) (netip.Prefix, bool) {
	if !dst.IsValid() {
		return netip.Prefix{}, false
	}
	if mask == nil {
		return netip.PrefixFrom(dst, dst.BitLen()), true
	}
	bits, done := 0, false
	for _, b := range mask {
		for i := 7; i >= 0; i-- {
			switch set := b&(1<<i) != 0; {
			case set && done:
				return netip.Prefix{}, false
			case set:
				bits++
			default:
				done = true
			}
		}
	}
	if bits > dst.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(dst, bits).Masked(), true
}
