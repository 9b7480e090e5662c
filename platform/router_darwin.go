package platform

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// macOS routing: the agent's addresses and routes go on its utun device with
// ifconfig(8) and route(8), in the main table, as wg-quick does it; the
// agent's own sockets are bound to the primary interface (IP_BOUND_IF,
// bypass_darwin.go), so they never loop into the utun. Every change is
// journalled (routes.journal) before it is made; the utun dies with the
// process, taking its routes with it, and the next start removes whatever
// else the journal records. The commands are in router_darwin_plan.go.

// NewRouter returns the macOS router. It first removes what a run that did
// not stop cleanly left, as its journal in stateDir records it.
func NewRouter(stateDir string, log *zap.Logger) (Router, error) {
	return newJournalledRouter(darwinRouteOS{}, func(cfg RouterConfig, dev linkSpec, broughtUp bool) routerState {
		return compileMain(cfg, dev, broughtUp, 0)
	}, stateDir, log)
}

// darwinRouteOS is the ifconfig/route half of the macOS router.
type darwinRouteOS struct{}

func (darwinRouteOS) device(name string) (linkSpec, bool, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return linkSpec{}, false, err
	}
	return linkSpec{Name: ifc.Name, Index: ifc.Index}, ifc.Flags&net.FlagUp != 0, nil
}

func (darwinRouteOS) present(l linkSpec) (bool, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return false, fmt.Errorf("list interfaces: %w", err)
	}
	return slices.ContainsFunc(ifs, func(i net.Interface) bool { return i.Index == l.Index && i.Name == l.Name }), nil
}

// read returns the addresses of want's devices and every route of the main
// table, whatever its interface: route(8) refuses a second route to the
// same destination, so one through another interface is in the way.
func (darwinRouteOS) read(want routerState) (osRouting, error) {
	var sys osRouting
	for _, l := range want.Links {
		ifc, err := net.InterfaceByIndex(l.Index)
		if err != nil {
			return sys, fmt.Errorf("find interface %s: %w", l.Name, err)
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return sys, fmt.Errorf("list the addresses of %s: %w", l.Name, err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, ok := prefixOf(n); ok {
					sys.Addrs = append(sys.Addrs, linkAddr{Index: l.Index, Addr: p})
				}
			}
		}
	}
	routes, err := ribRoutes()
	if err != nil {
		return sys, err
	}
	sys.Routes = routes
	return sys, nil
}

// ribRoutes reads the main table from the routing socket, without the
// entries the kernel cloned (ARP/NDP host entries).
func ribRoutes() ([]linkRoute, error) {
	rib, err := route.FetchRIB(unix.AF_UNSPEC, route.RIBTypeRoute, 0)
	if err != nil {
		return nil, fmt.Errorf("read the routing table: %w", err)
	}
	msgs, err := route.ParseRIB(route.RIBTypeRoute, rib)
	if err != nil {
		return nil, fmt.Errorf("parse the routing table: %w", err)
	}
	var out []linkRoute
	for _, m := range msgs {
		rm, ok := m.(*route.RouteMessage)
		if !ok || rm.Flags&(unix.RTF_WASCLONED|unix.RTF_LLINFO) != 0 || len(rm.Addrs) <= unix.RTAX_NETMASK {
			continue
		}
		dst := ribAddr(rm.Addrs[unix.RTAX_DST])
		var mask []byte
		if rm.Flags&unix.RTF_HOST == 0 {
			mask = ribMask(rm.Addrs[unix.RTAX_NETMASK], dst)
		}
		if p, ok := ribPrefix(dst, mask); ok && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, linkRoute{Index: rm.Index, Route: routeSpec{Dst: p}})
		}
	}
	return out, nil
}

func ribAddr(a route.Addr) netip.Addr {
	switch a := a.(type) {
	case *route.Inet4Addr:
		return netip.AddrFrom4(a.IP)
	case *route.Inet6Addr:
		return netip.AddrFrom16(a.IP)
	}
	return netip.Addr{}
}

// ribMask is a netmask entry's bytes; a missing one is /0 (the default).
func ribMask(a route.Addr, dst netip.Addr) []byte {
	switch a := a.(type) {
	case *route.Inet4Addr:
		return a.IP[:]
	case *route.Inet6Addr:
		return a.IP[:]
	}
	return make([]byte, dst.BitLen()/8)
}

func (darwinRouteOS) apply(op routerOp) error {
	argv, err := darwinCommand(op)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err == nil || darwinAlreadyDone(op, string(out)) {
		return nil
	}
	if !op.adds() && strings.Contains(string(out), "does not exist") {
		return nil // the device went, with what the agent added to it
	}
	return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
}
