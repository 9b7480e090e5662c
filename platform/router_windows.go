package platform

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// Windows routing: the agent's addresses and routes go on its Wintun adapter
// through the IP Helper API (winipcfg), in the main table; the adapter's
// interface metric is set low so that an app prefix equal to a LAN's goes
// through the agent. The agent's own sockets are bound to the physical
// interface (IP_UNICAST_IF, bypass_windows.go), so they never loop into the
// adapter. Every change is journalled (routes.journal) before it is made;
// the adapter dies with the process, taking its routes with it, and the next
// start removes whatever else the journal records.

// tunMetric is the interface metric of the agent's adapter (automatic metrics
// of physical interfaces start at 5 for the fastest links).
const tunMetric = 1

// NewRouter returns the Windows router. It first removes what a run that
// did not stop cleanly left, as its journal in stateDir records it.
func NewRouter(stateDir string, log *zap.Logger) (Router, error) {
	return newJournalledRouter(winRouteOS{}, func(cfg RouterConfig, dev linkSpec, broughtUp bool) routerState {
		return compileMain(cfg, dev, broughtUp, tunMetric)
	}, stateDir, log)
}

// winRouteOS is the IP Helper half of the Windows router.
type winRouteOS struct{}

// device finds the adapter by its alias (the name given to CreateTUN).
// Windows has no administrative up/down for it: it is up.
func (winRouteOS) device(name string) (linkSpec, bool, error) {
	ifs, err := winipcfg.GetIfTable2Ex(winipcfg.MibIfEntryNormal)
	if err != nil {
		return linkSpec{}, false, fmt.Errorf("list interfaces: %w", err)
	}
	for i := range ifs {
		if ifs[i].Alias() == name {
			return linkSpec{Name: name, Index: int(ifs[i].InterfaceIndex)}, true, nil
		}
	}
	return linkSpec{}, false, fmt.Errorf("no adapter named %q", name)
}

// luid returns the adapter l names, ok false when it is gone or another
// adapter now has its index.
func (winRouteOS) luid(l linkSpec) (winipcfg.LUID, bool, error) {
	luid, err := winipcfg.LUIDFromIndex(uint32(l.Index))
	if isNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	row, err := luid.Interface()
	if isNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return luid, row.Alias() == l.Name, nil
}

func (w winRouteOS) present(l linkSpec) (bool, error) {
	_, ok, err := w.luid(l)
	return ok, err
}

// read returns the addresses and routes on want's adapters: on Windows a
// route to the same prefix through another interface is no collision.
func (winRouteOS) read(want routerState) (osRouting, error) {
	var sys osRouting
	mine := func(index uint32) bool {
		return slices.ContainsFunc(want.Links, func(l linkSpec) bool { return l.Index == int(index) })
	}
	addrs, err := winipcfg.GetUnicastIPAddressTable(windows.AF_UNSPEC)
	if err != nil {
		return sys, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if mine(a.InterfaceIndex) {
			p := netip.PrefixFrom(a.Address.Addr(), int(a.OnLinkPrefixLength))
			sys.Addrs = append(sys.Addrs, linkAddr{Index: int(a.InterfaceIndex), Addr: p})
		}
	}
	routes, err := winipcfg.GetIPForwardTable2(windows.AF_UNSPEC)
	if err != nil {
		return sys, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if mine(r.InterfaceIndex) {
			sys.Routes = append(sys.Routes, linkRoute{Index: int(r.InterfaceIndex),
				Route: routeSpec{Dst: r.DestinationPrefix.Prefix(), Proto: int(r.Protocol)}})
		}
	}
	return sys, nil
}

func (w winRouteOS) apply(op routerOp) error {
	luid, ok, err := w.luid(op.Link)
	if err != nil {
		return fmt.Errorf("find adapter %s (#%d): %w", op.Link.Name, op.Link.Index, err)
	}
	if !ok {
		if op.adds() {
			return fmt.Errorf("adapter %s (#%d) is gone", op.Link.Name, op.Link.Index)
		}
		return nil // gone, and what it carried with it
	}
	switch op.Kind {
	case opAddrAdd:
		if err = luid.AddIPAddress(op.Addr); err == nil || errors.Is(err, windows.ERROR_OBJECT_ALREADY_EXISTS) {
			waitPreferred(luid, op.Addr.Addr())
		}
	case opAddrDel:
		err = luid.DeleteIPAddress(op.Addr)
	case opRouteAdd:
		err = luid.AddRoute(op.Route.Dst, unspecified(op.Route.Dst), 0)
	case opRouteDel:
		err = luid.DeleteRoute(op.Route.Dst, unspecified(op.Route.Dst))
	case opMetricSet:
		err = setMetric(luid, false, uint32(op.Metric))
	case opMetricAuto:
		err = setMetric(luid, true, 0)
	case opLinkUp, opLinkDown:
		return nil // never planned: device reports the adapter up
	default:
		return fmt.Errorf("not a change the Windows router makes")
	}
	if op.adds() && errors.Is(err, windows.ERROR_OBJECT_ALREADY_EXISTS) || !op.adds() && isNotFound(err) {
		return nil
	}
	return err
}

// addrSettle is how long waitPreferred waits for a new address.
const addrSettle = 5 * time.Second

// waitPreferred waits (up to addrSettle) until the address is usable
// (duplicate address detection done), so that the agent's DNS proxy can bind
// to it at once; a bind before then fails with WSAEADDRNOTAVAIL.
func waitPreferred(luid winipcfg.LUID, addr netip.Addr) {
	for deadline := time.Now().Add(addrSettle); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		row, err := luid.IPAddress(addr)
		if err != nil || row.DadState == winipcfg.DadStatePreferred {
			return
		}
	}
}

// setMetric sets the adapter's interface metric for both families (a family
// that is off on the adapter is skipped).
func setMetric(luid winipcfg.LUID, automatic bool, metric uint32) error {
	for _, family := range []winipcfg.AddressFamily{windows.AF_INET, windows.AF_INET6} {
		row, err := luid.IPInterface(family)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		row.UseAutomaticMetric = automatic
		row.Metric = metric
		if family == windows.AF_INET {
			row.SitePrefixLength = 0 // SetIpInterfaceEntry refuses any other for IPv4
		}
		if err := row.Set(); err != nil {
			return err
		}
	}
	return nil
}

// unspecified is the on-link next hop of p's family.
func unspecified(p netip.Prefix) netip.Addr {
	if p.Addr().Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

func isNotFound(err error) bool {
	return errors.Is(err, windows.ERROR_NOT_FOUND) || errors.Is(err, windows.ERROR_FILE_NOT_FOUND)
}
