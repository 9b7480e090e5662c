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

// NewRouter returns the Linux router, which talks rtnetlink directly.
func NewRouter(log *zap.Logger) (Router, error) {
	return &linuxRouter{log: log.Named("router")}, nil
}

type linuxRouter struct {
	log *zap.Logger

	mu     sync.Mutex
	cur    RouterConfig // what Set applied last
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
	for _, p := range added(r.cur.Routes, cfg.Routes) {
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p), Scope: netlink.SCOPE_LINK, Protocol: routeProto}
		if err := netlink.RouteReplace(rt); err != nil {
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

// routeProto marks our routes so an administrator can list them with
// `ip route show proto 0x7a`.
const routeProto = netlink.RouteProtocol(0x7a)

func (r *linuxRouter) removeLocked(link netlink.Link, routes, addrs []netip.Prefix) {
	for _, p := range routes {
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p), Scope: netlink.SCOPE_LINK, Protocol: routeProto}
		if err := netlink.RouteDel(rt); err != nil && !errors.Is(err, unix.ESRCH) {
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
