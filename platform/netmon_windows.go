package platform

import (
	"fmt"

	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// ipHelperSub is the Windows netNotifier: the IP Helper's change callbacks
// (NotifyRouteChange2, NotifyUnicastIpAddressChange, NotifyIpInterfaceChange
// through winipcfg), which Windows calls on its own threads for every route,
// unicast address and interface change. The callbacks only notify; the
// monitor reads the state itself after the burst. Windows does not end these
// subscriptions, so Events is never closed.
type ipHelperSub struct {
	events notifyChan
	route  *winipcfg.RouteChangeCallback
	addr   *winipcfg.UnicastAddressChangeCallback
	iface  *winipcfg.InterfaceChangeCallback
}

func subscribeNet() (netNotifier, error) {
	s := &ipHelperSub{events: newNotifyChan()}
	var err error
	if s.route, err = winipcfg.RegisterRouteChangeCallback(func(winipcfg.MibNotificationType, *winipcfg.MibIPforwardRow2) {
		s.events.notify()
	}); err != nil {
		return nil, fmt.Errorf("subscribe to route changes: %w", err)
	}
	if s.addr, err = winipcfg.RegisterUnicastAddressChangeCallback(func(winipcfg.MibNotificationType, *winipcfg.MibUnicastIPAddressRow) {
		s.events.notify()
	}); err != nil {
		s.Close()
		return nil, fmt.Errorf("subscribe to address changes: %w", err)
	}
	if s.iface, err = winipcfg.RegisterInterfaceChangeCallback(func(winipcfg.MibNotificationType, *winipcfg.MibIPInterfaceRow) {
		s.events.notify()
	}); err != nil {
		s.Close()
		return nil, fmt.Errorf("subscribe to interface changes: %w", err)
	}
	return s, nil
}

func (s *ipHelperSub) Events() <-chan struct{} { return s.events }

// Close unregisters the callbacks; winipcfg returns once none runs. A
// cancellation Windows refuses is ignored: the callback left registered only
// notifies a channel nobody reads.
func (s *ipHelperSub) Close() {
	if s.route != nil {
		_ = s.route.Unregister()
	}
	if s.addr != nil {
		_ = s.addr.Unregister()
	}
	if s.iface != nil {
		_ = s.iface.Unregister()
	}
}
