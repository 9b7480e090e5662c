package platform

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
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
const (
	routeTable   = 122
	rulePriority = 5270
)

// NewRouter returns the Linux router, which talks rtnetlink directly. It first
// removes the rules a crashed run may have left (routes die with the TUN).
func NewRouter(log *zap.Logger) (Router, error) {
	r := &linuxRouter{log: log.Named("router")}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		for netlink.RuleDel(r.rule(family)) == nil {
			r.log.Info("removed a routing rule left by an earlier run", zap.Int("family", family))
		}
	}
	return r, nil
}

func (r *linuxRouter) rule(family int) *netlink.Rule {
	rule := netlink.NewRule()
	rule.Family = family
	rule.Priority = rulePriority
	rule.Table = routeTable
	rule.Mark = BypassMark
	rule.Mask = &bypassMask
	rule.Invert = true
	return rule
}

var bypassMask uint32 = 0xffffffff

type linuxRouter struct {
	log *zap.Logger

	mu     sync.Mutex
	cur    RouterConfig // what Set applied last
	rules  bool         // the bypass rules are installed
	closed bool
}

func (r *linuxRouter) Set(cfg RouterConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("router closed")
	}
	link, err := netlink.LinkByName(cfg.Interface)
	if err != nil {
		return fmt.Errorf("find interface %s: %w", cfg.Interface, err)
	}
	// Order matters: the link must be up before the kernel accepts routes
	// through it, and addresses come first so routes get a source address.
	for _, p := range added(r.cur.Addrs, cfg.Addrs) {
		if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
			return fmt.Errorf("add address %s to %s: %w", p, cfg.Interface, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring %s up: %w", cfg.Interface, err)
	}
	if !r.rules {
		for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			if err := netlink.RuleAdd(r.rule(family)); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("add routing rule (fwmark %#x → table %d): %w", BypassMark, routeTable, err)
			}
		}
		r.rules = true
	}
	for _, p := range added(r.cur.Routes, cfg.Routes) {
		if err := netlink.RouteReplace(r.route(link, p)); err != nil {
			return fmt.Errorf("add route %s dev %s: %w", p, cfg.Interface, err)
		}
	}
	if r.cur.Interface == cfg.Interface {
		r.removeLocked(link, added(cfg.Routes, r.cur.Routes), added(cfg.Addrs, r.cur.Addrs))
	}
	r.cur = cfg
	r.log.Info("routes set", zap.String("dev", cfg.Interface),
		zap.Stringers("addrs", cfg.Addrs), zap.Stringers("routes", cfg.Routes))
	return nil
}

func (r *linuxRouter) route(link netlink.Link, p netip.Prefix) *netlink.Route {
	return &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p), Scope: netlink.SCOPE_LINK,
		Protocol: routeProto, Table: routeTable}
}

// routeProto marks our routes so an administrator can list them with
// `ip route show table 122 proto 0x7a`.
const routeProto = netlink.RouteProtocol(0x7a)

func (r *linuxRouter) removeLocked(link netlink.Link, routes, addrs []netip.Prefix) {
	for _, p := range routes {
		if err := netlink.RouteDel(r.route(link, p)); err != nil && !errors.Is(err, unix.ESRCH) {
			r.log.Warn("remove route", zap.Stringer("prefix", p), zap.Error(err))
		}
	}
	for _, p := range addrs {
		if err := netlink.AddrDel(link, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			r.log.Warn("remove address", zap.Stringer("prefix", p), zap.Error(err))
		}
	}
}

// Close removes what Set added. When the TUN device is already gone the kernel
// has dropped its routes and addresses with it, which is not an error.
func (r *linuxRouter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.rules {
		for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			if err := netlink.RuleDel(r.rule(family)); err != nil && !errors.Is(err, unix.ENOENT) {
				r.log.Warn("remove routing rule", zap.Error(err))
			}
		}
		r.rules = false
	}
	if r.cur.Interface == "" {
		return nil
	}
	link, err := netlink.LinkByName(r.cur.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find interface %s: %w", r.cur.Interface, err)
	}
	r.removeLocked(link, r.cur.Routes, r.cur.Addrs)
	r.cur = RouterConfig{}
	return nil
}

// added returns the prefixes in next that are not in prev.
func added(prev, next []netip.Prefix) []netip.Prefix {
	seen := make(map[netip.Prefix]bool, len(prev))
	for _, p := range prev {
		seen[p.Masked()] = true
	}
	var out []netip.Prefix
	for _, p := range next {
		if !seen[p.Masked()] {
			out = append(out, p)
		}
	}
	return out
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
