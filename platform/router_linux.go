package platform

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Linux routing: the agent's routes live in their own table, consulted by a
// rule for every packet that does not carry the agent's bypass mark. The
// agent's own sockets (to the tenant, the PoP, and flows that leave the TUN
// unsteered, such as a port outside an app's definition) carry the mark, so
// they follow the main table and never loop back into the TUN.
//
//	ip rule:  5270: not from all fwmark 0x7a lookup 122
//	ip route show table 122    # the stub range and app prefixes, dev zt0
//
// Every change is journalled (routes.journal in the state directory) before
// it is made. The TUN's addresses and routes die with the device when the
// agent does, but the rules outlive it: the next start removes what the
// journal records, and only that.
//
// routeTable, rulePriority and routeProto are in router_plan.go.

// NewRouter returns the Linux router, which talks rtnetlink directly. It
// first removes what a run that did not stop cleanly left, as its journal in
// stateDir records it.
//
// Its requests share one netlink socket, which Close closes: with 10,000 apps
// a first Set makes 30,000 requests, and a socket opened, bound and closed for
// each (the library's zero Handle) was 30,000 times three more system calls
// and 300,000 short-lived objects.
func NewRouter(stateDir string, log *zap.Logger) (Router, error) {
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// As the library's own sockets per request have it.
	if err := nl.SetSocketTimeout(time.Minute); err != nil {
		nl.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	r, err := newLinuxRouter(nl, stateDir, log)
	if err != nil {
		nl.Close()
		return nil, err
	}
	r.closeOS = nl.Close
	return r, nil
}

// newLinuxRouter is the journalled router over nl (a zero Handle: the
// process's network namespace; tests pass one in a namespace of their own).
func newLinuxRouter(nl *netlink.Handle, stateDir string, log *zap.Logger) (*journalledRouter, error) {
	return newJournalledRouter(netlinkOS{nl: nl}, func(cfg RouterConfig, dev linkSpec, broughtUp bool) routerState {
		return compileRouter(cfg, dev.Index, broughtUp)
	}, stateDir, log)
}

// netlinkOS is the rtnetlink half of the Linux router.
type netlinkOS struct {
	nl *netlink.Handle
}

func (o netlinkOS) device(name string) (linkSpec, bool, error) {
	link, err := o.nl.LinkByName(name)
	if err != nil {
		return linkSpec{}, false, err
	}
	attrs := link.Attrs()
	return linkSpec{Name: attrs.Name, Index: attrs.Index}, attrs.Flags&net.FlagUp != 0, nil
}

func (o netlinkOS) present(l linkSpec) (bool, error) {
	link, err := o.linkOf(l)
	return link != nil, err
}

func (o netlinkOS) read(want routerState) (osRouting, error) { return o.readOS(want) }

// apply makes one change. Adding what is there already, or removing what
// is gone already, succeeds: a change may be repeated after a kill.
//
// A route names its device by index alone: the plan was made against devices
// found present under their index and name (presentLocked), and looking the
// device up again for each of 30,000 routes (10,000 apps) made 250 MB of
// garbage and as many extra requests. A device gone since fails the route's
// request with ENODEV, which a removal takes as done.
func (o netlinkOS) apply(op routerOp) error {
	var link netlink.Link
	if op.Kind != opRuleAdd && op.Kind != opRuleDel && op.Kind != opRouteAdd && op.Kind != opRouteDel {
		var err error
		if link, err = o.linkOf(op.Link); err != nil {
			return err
		}
		if link == nil {
			if op.adds() {
				return fmt.Errorf("interface %s (#%d) is gone", op.Link.Name, op.Link.Index)
			}
			return nil // gone, and what it carried with it
		}
	}
	var err error
	switch op.Kind {
	case opAddrAdd:
		err = o.nl.AddrAdd(link, &netlink.Addr{IPNet: ipNet(op.Addr)})
	case opAddrDel:
		err = o.nl.AddrDel(link, &netlink.Addr{IPNet: ipNet(op.Addr)})
	case opLinkUp:
		err = o.nl.LinkSetUp(link)
	case opLinkDown:
		err = o.nl.LinkSetDown(link)
	case opRuleAdd:
		err = o.nl.RuleAdd(netlinkRule(op.Rule))
	case opRuleDel:
		err = o.nl.RuleDel(netlinkRule(op.Rule))
	case opRouteAdd:
		err = o.nl.RouteAdd(netlinkRoute(op.Link.Index, op.Route))
	case opRouteDel:
		err = o.nl.RouteDel(netlinkRoute(op.Link.Index, op.Route))
	}
	if op.adds() && errors.Is(err, unix.EEXIST) {
		return nil
	}
	if op.Kind == opRouteAdd && errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("interface %s (#%d) is gone", op.Link.Name, op.Link.Index)
	}
	if !op.adds() && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EAFNOSUPPORT)) {
		return nil
	}
	return err
}

// linkOf returns the device l names (index and name), nil when it is gone.
func (o netlinkOS) linkOf(l linkSpec) (netlink.Link, error) {
	link, err := o.nl.LinkByIndex(l.Index)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) && !errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("find interface %s (#%d): %w", l.Name, l.Index, err)
		}
		link = nil
	} else if link.Attrs().Name != l.Name {
		link = nil // another device now has the index
	}
	return link, nil
}

func netlinkRule(s ruleSpec) *netlink.Rule {
	rule := netlink.NewRule()
	rule.Family = s.Family
	rule.Priority = s.Priority
	rule.Table = s.Table
	rule.Mark = s.Mark
	mask := s.Mask
	rule.Mask = &mask
	rule.Invert = s.Invert
	return rule
}

func netlinkRoute(linkIndex int, s routeSpec) *netlink.Route {
	route := &netlink.Route{LinkIndex: linkIndex, Dst: ipNet(s.Dst), Table: s.Table,
		Protocol: netlink.RouteProtocol(s.Proto)}
	if s.Dst.Addr().Is4() {
		route.Scope = netlink.SCOPE_LINK
	}
	return route
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// readOS reads what the OS has that want could collide with: the rules
// exactly like want's, the addresses of want's devices, and every route in
// want's tables.
func (o netlinkOS) readOS(want routerState) (osRouting, error) {
	var sys osRouting
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := retryDump(func() ([]netlink.Rule, error) { return o.nl.RuleList(family) })
		if err != nil {
			return sys, fmt.Errorf("list routing rules: %w", err)
		}
		for _, rule := range rules {
			if s, ok := ruleSpecOf(rule); ok {
				sys.Rules = append(sys.Rules, s)
			}
		}
	}
	tables := map[int]bool{}
	for _, l := range want.Links {
		link, err := o.nl.LinkByIndex(l.Index)
		if err != nil {
			return sys, fmt.Errorf("find interface %s: %w", l.Name, err)
		}
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return o.nl.AddrList(link, netlink.FAMILY_ALL) })
		if err != nil {
			return sys, fmt.Errorf("list the addresses of %s: %w", l.Name, err)
		}
		for _, a := range addrs {
			if p, ok := prefixOf(a.IPNet); ok {
				sys.Addrs = append(sys.Addrs, linkAddr{Index: l.Index, Addr: p})
			}
		}
		for _, rt := range l.Routes {
			tables[rt.Table] = true
		}
	}
	for table := range tables {
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return o.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return sys, fmt.Errorf("list the routes of table %d: %w", table, err)
		}
		for _, rt := range routes {
			if p, ok := prefixOf(rt.Dst); ok {
				sys.Routes = append(sys.Routes, linkRoute{Index: rt.LinkIndex,
					Route: routeSpec{Dst: p, Table: rt.Table, Proto: int(rt.Protocol)}})
			}
		}
	}
	return sys, nil
}

// retryDump repeats a netlink dump that the kernel interrupted (the table
// changed while it was read), a few times.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range 5 {
		var out []T
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

// ruleSpecOf returns rule as a ruleSpec, when it selects on nothing but the
// firewall mark (it could then be one of the agent's).
func ruleSpecOf(rule netlink.Rule) (ruleSpec, bool) {
	if rule.Src != nil || rule.Dst != nil || rule.IifName != "" || rule.OifName != "" || rule.Tos != 0 ||
		rule.TunID != 0 || rule.Goto != -1 || rule.IPProto != 0 || rule.Dport != nil || rule.Sport != nil ||
		rule.UIDRange != nil || rule.SuppressIfgroup != -1 || rule.SuppressPrefixlen != -1 || rule.Mask == nil {
		return ruleSpec{}, false
	}
	return ruleSpec{Family: rule.Family, Priority: rule.Priority, Table: rule.Table,
		Mark: rule.Mark, Mask: *rule.Mask, Invert: rule.Invert}, true
}
