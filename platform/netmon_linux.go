package platform

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// netlinkMonitor is the Linux NetMonitor. Netlink notifications only say
// that something changed; after a burst settles the monitor reads the
// addresses and the main routing table and reports a change only if what
// matters differs from the last report (netState), so the agent's own route
// updates on its TUN device, address lifetimes being refreshed and the like
// cost nothing.
type netlinkMonitor struct {
	ignore  map[string]bool
	log     *zap.Logger
	changes chan struct{}
	stop    chan struct{}
	done    chan struct{} // closed when run has exited
}

// NewNetMonitor subscribes to the kernel's route and address notifications.
// Changes on the interfaces named in ignore are not reported.
func NewNetMonitor(ignore []string, log *zap.Logger) (NetMonitor, error) {
	if log == nil {
		log = zap.NewNop()
	}
	m := &netlinkMonitor{
		ignore:  make(map[string]bool),
		log:     log.Named("netmon"),
		changes: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, name := range ignore {
		m.ignore[name] = true
	}
	sub, err := subscribeNet()
	if err != nil {
		return nil, err
	}
	last, err := m.state()
	if err != nil {
		sub.close()
		return nil, err
	}
	go m.run(sub, last)
	return m, nil
}

func (m *netlinkMonitor) Changes() <-chan struct{} { return m.changes }

func (m *netlinkMonitor) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	return nil
}

// run waits for notifications, lets each burst settle, and reports a change
// when the network state differs from the last one reported.
func (m *netlinkMonitor) run(sub *netSub, last string) {
	defer close(m.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var burst time.Time // when the burst being settled began; zero when none
	notified := func() {
		now := time.Now()
		if burst.IsZero() {
			burst = now
		}
		timer.Reset(min(NetSettle, burst.Add(netSettleMax).Sub(now)))
	}
	for {
		select {
		case <-m.stop:
			timer.Stop()
			if sub != nil {
				sub.close()
			}
			return
		case _, ok := <-sub.routeCh():
			if !ok {
				sub = m.resubscribe(sub)
			}
			notified()
		case _, ok := <-sub.addrCh():
			if !ok {
				sub = m.resubscribe(sub)
			}
			notified()
		case <-timer.C:
			burst = time.Time{}
			if sub == nil { // resubscribing failed: try again
				sub = m.resubscribe(nil)
				notified()
			}
			cur, err := m.state()
			if err != nil {
				m.log.Warn("read the network configuration", zap.Error(err))
				continue
			}
			if cur == last {
				continue
			}
			m.log.Info("network changed", zap.String("now", cur))
			last = cur
			select {
			case m.changes <- struct{}{}:
			default: // one is waiting already
			}
		}
	}
}

// resubscribe replaces a subscription the kernel ended (its socket overflowed
// during a flood of changes: some were lost, so the state is read again). On
// failure it returns nil, and run tries again when the timer fires.
func (m *netlinkMonitor) resubscribe(old *netSub) *netSub {
	if old != nil {
		old.close()
		m.log.Warn("netlink subscription lost; subscribing again")
	}
	sub, err := subscribeNet()
	if err != nil {
		m.log.Warn("netlink subscription", zap.Error(err))
		return nil
	}
	return sub
}

// state reads what netState compares.
func (m *netlinkMonitor) state() (string, error) {
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
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	return netState(names, addrs, routes, m.ignore), nil
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

// netSub is one subscription to route and address notifications.
type netSub struct {
	routes chan netlink.RouteUpdate
	addrs  chan netlink.AddrUpdate
	done   chan struct{}
}

// subscribeBuffer is the receive buffer asked for on each netlink socket:
// the agent itself may add thousands of routes at once (the kernel caps it
// at net.core.rmem_max; an overflow ends the subscription and run renews it).
const subscribeBuffer = 1 << 20

func subscribeNet() (*netSub, error) {
	s := &netSub{
		routes: make(chan netlink.RouteUpdate, 64),
		addrs:  make(chan netlink.AddrUpdate, 64),
		done:   make(chan struct{}),
	}
	if err := netlink.RouteSubscribeWithOptions(s.routes, s.done, netlink.RouteSubscribeOptions{ReceiveBufferSize: subscribeBuffer}); err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribe to route changes: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(s.addrs, s.done, netlink.AddrSubscribeOptions{ReceiveBufferSize: subscribeBuffer}); err != nil {
		s.addrs = nil
		s.close()
		return nil, fmt.Errorf("subscribe to address changes: %w", err)
	}
	return s, nil
}

// routeCh and addrCh are the channels to select on; nil (never ready) for a
// nil subscription.
func (s *netSub) routeCh() <-chan netlink.RouteUpdate {
	if s == nil {
		return nil
	}
	return s.routes
}

func (s *netSub) addrCh() <-chan netlink.AddrUpdate {
	if s == nil {
		return nil
	}
	return s.addrs
}

// close ends the subscription: it closes the sockets and drains the
// channels until netlink's goroutines, which may be blocked sending on them,
// have closed them.
func (s *netSub) close() {
	close(s.done)
	routes, addrs := s.routes, s.addrs
	for routes != nil || addrs != nil {
		select {
		case _, ok := <-routes:
			if !ok {
				routes = nil
			}
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
			}
		}
	}
}
