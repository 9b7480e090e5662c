package platform

import (
	"errors"
	"time"
)

// NetMonitor tells the agent when the machine's network changed in a way that
// may move or break its connections: an address appeared or went away, or a
// route of the main table changed (the default route moving to another
// uplink, a VPN adding routes), on an interface other than the ones it was
// told to ignore (the agent's own TUN device, whose routes the agent changes
// itself). Each OS's monitor subscribes to the OS's notifications (netlink
// on Linux, the routing socket on macOS, the IP Helper's change callbacks on
// Windows), so a change is known at once (notifyMonitor).
type NetMonitor interface {
	// Changes receives a value after the network changed. A burst (an
	// interface coming up with its addresses and routes) is reported once,
	// NetSettle after it quietens, and a change that is undone within the
	// burst is not reported. The channel holds one value; changes made while
	// one waits to be received coalesce with it.
	Changes() <-chan struct{}
	// Close stops the monitor and returns after its goroutines have exited.
	Close() error
}

// NetSettle is how long the network must be quiet before a change is
// reported; a burst that never quietens is reported after netSettleMax.
const (
	NetSettle    = 200 * time.Millisecond
	netSettleMax = time.Second
)

// ErrNetMonitorUnsupported is returned by NewNetMonitor on an OS whose
// monitor is not written (neither Linux, Windows nor macOS). The agent then
// notices a network change by its keepalives alone.
var ErrNetMonitorUnsupported = errors.New("network change monitoring is not implemented on this OS yet")
