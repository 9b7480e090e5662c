//go:build windows || darwin

package platform

import (
	"net"

	"go.uber.org/zap"
)

// NewNetMonitor subscribes to the OS's network notifications
// (subscribeNet: the routing socket on macOS, the IP Helper's change
// callbacks on Windows) and reads the interfaces and default routes after
// each burst (a notifyMonitor). Changes on the interfaces named in ignore
// are not reported.
func NewNetMonitor(ignore []string, log *zap.Logger) (NetMonitor, error) {
	return newNotifyMonitor(func() (string, error) { return readNetState(ignore) }, subscribeNet, log)
}

// readNetState reads ifaceState's input: the interfaces and their
// addresses, and the default routes as the bypass finds them.
func readNetState(ignore []string) (string, error) {
	sys, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	var ifs []netIface
	for _, i := range sys {
		ni := netIface{Name: i.Name, Up: i.Flags&net.FlagUp != 0}
		addrs, err := i.Addrs()
		if err != nil {
			return "", err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, ok := prefixOf(n); ok {
					ni.Addrs = append(ni.Addrs, p)
				}
			}
		}
		ifs = append(ifs, ni)
	}
	var def [2]int
	for fam, v6 := range []bool{false, true} {
		routes, err := bypassIfaces.read(v6)
		if err != nil {
			return "", err
		}
		def[fam], _ = primaryInterface(routes)
	}
	return ifaceState(ifs, ignore, def[0], def[1]), nil
}
