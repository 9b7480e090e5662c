package platform

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// NewNetMonitor subscribes to the kernel's route and address notifications
// (a notifyMonitor over netlink). Changes on the interfaces named in ignore
// are not reported.
func NewNetMonitor(ignore []string, log *zap.Logger) (NetMonitor, error) {
	skip := make(map[string]bool)
	for _, name := range ignore {
		skip[name] = true
	}
	return newNotifyMonitor(func() (string, error) { return readNetlinkState(skip) }, subscribeNet, log)
}

// readNetlinkState reads what netState compares: the addresses and the main
// routing table.
func readNetlinkState(ignore map[string]bool) (string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", fmt.Errorf("list addresses: %w", err)
	}
	routes, err := mainRoutes(netns.None())
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	return netState(names, addrs, routes, ignore), nil
}

// mainRoutes lists the main table's routes. With 10,000 apps the agent's own
// table holds 30,000 routes, and a dump of every table parsed them all on each
// network change and each minute's resync (13 MB of garbage). On a socket with
// strict checking (Linux 4.20 and later) the kernel sends the main table
// alone; without it, the library skips other tables' routes before parsing
// them (RouteList with no filter), though the kernel still sends them.
//
// ns is the network namespace (netns.None() for the process's own).
func mainRoutes(ns netns.NsHandle) ([]netlink.Route, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if h.SetStrictCheck(true) == nil {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	}
	return h.RouteList(nil, netlink.FAMILY_ALL)
}

// netState describes, one sorted line each, the global addresses and the
// main-table routes outside the ignored interfaces: what a connection's path
// depends on. Link-local and multicast entries, which every interface has,
// are left out.
func netState(names map[int]string, addrs []netlink.Addr, routes []netlink.Route, ignore map[string]bool) string {
	name := func(idx int) string {
		if n, ok := names[idx]; ok {
			return n
		}
		return fmt.Sprintf("if%d", idx)
	}
	var lines []string
	for _, a := range addrs {
		if a.IPNet == nil || !a.IP.IsGlobalUnicast() || ignore[name(a.LinkIndex)] {
			continue
		}
		lines = append(lines, "addr "+name(a.LinkIndex)+" "+a.IPNet.String())
	}
	for _, r := range routes {
		if ignore[name(r.LinkIndex)] || (r.Dst != nil && (r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast())) {
			continue
		}
		dst := "default"
		if r.Dst != nil && !isDefault(r.Dst) {
			dst = r.Dst.String()
		}
		line := fmt.Sprintf("route %s via %v dev %s src %v metric %d", dst, r.Gw, name(r.LinkIndex), r.Src, r.Priority)
		for _, nh := range r.MultiPath {
			line += fmt.Sprintf(" nexthop via %v dev %s", nh.Gw, name(nh.LinkIndex))
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

// netSub is one subscription to route and address notifications: netlink's
// goroutines feed routes and addrs; forward turns them into Events.
type netSub struct {
	routes chan netlink.RouteUpdate
	addrs  chan netlink.AddrUpdate
	done   chan struct{}
	events notifyChan
	exited chan struct{} // closed when forward has returned
}

// subscribeBuffer is the receive buffer asked for on each netlink socket:
// the agent itself may add thousands of routes at once (the kernel caps it
// at net.core.rmem_max; an overflow ends the subscription and the monitor
// renews it).
const subscribeBuffer = 1 << 20

func subscribeNet() (netNotifier, error) {
	s := &netSub{
		routes: make(chan netlink.RouteUpdate, 64),
		addrs:  make(chan netlink.AddrUpdate, 64),
		done:   make(chan struct{}),
		events: newNotifyChan(),
		exited: make(chan struct{}),
	}
	if err := netlink.RouteSubscribeWithOptions(s.routes, s.done, netlink.RouteSubscribeOptions{ReceiveBufferSize: subscribeBuffer}); err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribe to route changes: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(s.addrs, s.done, netlink.AddrSubscribeOptions{ReceiveBufferSize: subscribeBuffer}); err != nil {
		close(s.done)
		drain(s.routes)
		return nil, fmt.Errorf("subscribe to address changes: %w", err)
	}
	go s.forward()
	return s, nil
}

func (s *netSub) Events() <-chan struct{} { return s.events }

// forward notifies for each update until netlink's goroutines have closed
// both channels (the subscription lost, or closed); Events is closed when
// the first of them goes.
func (s *netSub) forward() {
	defer close(s.exited)
	routes, addrs := s.routes, s.addrs
	lost := func() {
		if routes != nil && addrs != nil { // the first to go
			close(s.events)
		}
	}
	for routes != nil || addrs != nil {
		select {
		case _, ok := <-routes:
			if !ok {
				lost()
				routes = nil
				continue
			}
		case _, ok := <-addrs:
			if !ok {
				lost()
				addrs = nil
				continue
			}
		}
		if routes != nil && addrs != nil {
			s.events.notify()
		}
	}
}

// Close ends the subscription: it closes the sockets and waits until
// netlink's goroutines, which forward keeps draining, have closed their
// channels.
func (s *netSub) Close() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	<-s.exited
}

// drain reads a channel until its sender closes it.
func drain[T any](c <-chan T) {
	for range c {
	}
}
