package platform

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

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
func NewRouter(stateDir string, log *zap.Logger) (Router, error) {
	return newLinuxRouter(&netlink.Handle{}, stateDir, log)
}

// linuxRouter applies RouterConfigs through nl (a zero Handle: the
// process's network namespace; tests pass one in a namespace of their own).
type linuxRouter struct {
	nl      *netlink.Handle
	log     *zap.Logger
	journal journal
	// apply makes one change; tests replace it to stop part-way, as a kill
	// would.
	apply func(op routerOp, links map[int]netlink.Link) error

	mu      sync.Mutex
	have    routerState     // as journalled: a superset of what the agent's changes left in the OS
	foreign map[string]bool // someone else's entries already logged
	closed  bool
}

func newLinuxRouter(nl *netlink.Handle, stateDir string, log *zap.Logger) (*linuxRouter, error) {
	if log == nil {
		log = zap.NewNop()
	}
	j, err := newJournal(stateDir, routerJournalName)
	if err != nil {
		return nil, err
	}
	r := &linuxRouter{nl: nl, log: log.Named("router"), journal: j, foreign: map[string]bool{}}
	r.apply = r.applyOp
	if err := r.repair(); err != nil {
		return nil, err
	}
	return r, nil
}

// repair removes what the journal records, on the devices that are still
// the ones the agent changed.
func (r *linuxRouter) repair() error {
	var left routerState
	found, err := r.journal.read(&left)
	if err != nil || !found {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.have = left
	if err := r.moveLocked(routerState{}); err != nil {
		return fmt.Errorf("remove the routing an earlier run left (journal %s): %w", r.journal.path, err)
	}
	r.log.Info("removed the routing an earlier run left", zap.String("journal", r.journal.path))
	return nil
}

// Set implements Router.
func (r *linuxRouter) Set(cfg RouterConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("router closed")
	}
	link, err := r.nl.LinkByName(cfg.Interface)
	if err != nil {
		return fmt.Errorf("find interface %s: %w", cfg.Interface, err)
	}
	attrs := link.Attrs()
	dev := linkSpec{Name: attrs.Name, Index: attrs.Index}
	broughtUp := attrs.Flags&net.FlagUp == 0 || r.have.link(dev).Up
	want := compileRouter(cfg, attrs.Index, broughtUp)
	sys, err := r.readOS(want)
	if err != nil {
		return err
	}
	want, foreign := claimRouter(r.have, want, sys)
	for _, f := range foreign {
		if !r.foreign[f] {
			r.foreign[f] = true
			r.log.Warn("already in the system and not the agent's: left alone", zap.String("entry", f))
		}
	}
	if err := r.moveLocked(want); err != nil {
		return err
	}
	r.log.Info("routes set", zap.String("dev", cfg.Interface),
		zap.Stringers("addrs", cfg.Addrs), zap.Stringers("routes", cfg.Routes))
	return nil
}

// Close implements Router: it removes what Set added. When the TUN device
// is already gone the kernel has dropped its routes and addresses with it,
// which is not an error.
func (r *linuxRouter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.moveLocked(routerState{})
}

// moveLocked takes the OS from r.have to want. The journal first records
// everything in either, then the changes are made; after removals it is
// brought down to want (or goes, when want is empty). A failure or a kill
// part-way leaves the journal holding at least what is in the OS, which the
// next move or the next start's repair takes away. Adding only costs one
// journal write: the union is then want.
func (r *linuxRouter) moveLocked(want routerState) error {
	have, err := r.presentLocked(r.have)
	if err != nil {
		return err
	}
	gone := len(have.Links) != len(r.have.Links) // devices the journal names are gone
	plan := planRouter(have, want)
	if len(plan) > 0 {
		all := unionRouter(have, want)
		if err := r.journal.write(all); err != nil {
			return err
		}
		r.have = all
		links := map[int]netlink.Link{}
		for _, op := range plan {
			if err := r.apply(op, links); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
	}
	removed := slices.ContainsFunc(plan, func(op routerOp) bool { return !op.adds() })
	switch {
	case want.empty():
		if err := r.journal.clear(); err != nil {
			return err
		}
	case removed || len(plan) == 0 && gone:
		if err := r.journal.write(want); err != nil {
			return err
		}
	}
	r.have = want
	return nil
}

// presentLocked returns s without the devices that are gone or now carry
// another name: what the agent added to them went with them.
func (r *linuxRouter) presentLocked(s routerState) (routerState, error) {
	var lookupErr error
	out := s.keepLinks(func(l linkSpec) bool {
		link, err := r.nl.LinkByIndex(l.Index)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if !errors.As(err, &nf) && !errors.Is(err, unix.ENODEV) {
				lookupErr = errors.Join(lookupErr, fmt.Errorf("find interface %s (#%d): %w", l.Name, l.Index, err))
				return true
			}
			return false
		}
		return link.Attrs().Name == l.Name
	})
	return out, lookupErr
}

// applyOp makes one change. Adding what is there already, or removing what
// is gone already, succeeds: a change may be repeated after a kill.
func (r *linuxRouter) applyOp(op routerOp, links map[int]netlink.Link) error {
	var link netlink.Link
	if op.Kind != opRuleAdd && op.Kind != opRuleDel {
		var err error
		if link, err = r.linkOf(op.Link, links); err != nil {
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
		err = r.nl.AddrAdd(link, &netlink.Addr{IPNet: ipNet(op.Addr)})
	case opAddrDel:
		err = r.nl.AddrDel(link, &netlink.Addr{IPNet: ipNet(op.Addr)})
	case opLinkUp:
		err = r.nl.LinkSetUp(link)
	case opLinkDown:
		err = r.nl.LinkSetDown(link)
	case opRuleAdd:
		err = r.nl.RuleAdd(netlinkRule(op.Rule))
	case opRuleDel:
		err = r.nl.RuleDel(netlinkRule(op.Rule))
	case opRouteAdd:
		err = r.nl.RouteAdd(netlinkRoute(op.Link.Index, op.Route))
	case opRouteDel:
		err = r.nl.RouteDel(netlinkRoute(op.Link.Index, op.Route))
	}
	if op.adds() && errors.Is(err, unix.EEXIST) {
		return nil
	}
	if !op.adds() && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EAFNOSUPPORT)) {
		return nil
	}
	return err
}

// linkOf returns the device l names (index and name), nil when it is gone;
// links caches the answers for one move.
func (r *linuxRouter) linkOf(l linkSpec, links map[int]netlink.Link) (netlink.Link, error) {
	if link, ok := links[l.Index]; ok {
		return link, nil
	}
	link, err := r.nl.LinkByIndex(l.Index)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) && !errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("find interface %s (#%d): %w", l.Name, l.Index, err)
		}
		link = nil
	} else if link.Attrs().Name != l.Name {
		link = nil // another device now has the index
	}
	links[l.Index] = link
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
func (r *linuxRouter) readOS(want routerState) (osRouting, error) {
	var sys osRouting
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := retryDump(func() ([]netlink.Rule, error) { return r.nl.RuleList(family) })
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
		link, err := r.nl.LinkByIndex(l.Index)
		if err != nil {
			return sys, fmt.Errorf("find interface %s: %w", l.Name, err)
		}
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return r.nl.AddrList(link, netlink.FAMILY_ALL) })
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
			return r.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
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
