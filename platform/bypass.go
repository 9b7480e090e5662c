package platform

import (
	"context"
	"net"
	"syscall"
	"time"
)

// BypassMark is the firewall mark (SO_MARK) of the agent's own sockets on
// Linux: packets carrying it skip the agent's routing table, so they take the
// path they would take without the agent.
const BypassMark = 0x7a

// BypassDialer returns a dialer whose connections leave by the OS's own routes,
// never through the agent's TUN device, even to a destination inside an app
// prefix. The agent uses it for the tenant, the PoP and unsteered flows.
// Linux marks the socket (BypassMark); Windows and macOS bind it to the
// interface of the default route (IP_UNICAST_IF, IP_BOUND_IF). Its sockets
// are the agent's own: their remote ends join OwnEndpoints, what the uplink
// capture records.
func BypassDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: func(network, address string, c syscall.RawConn) error {
		noteOwnDial(network, address)
		return bypassControl(network, address, c)
	}}
}

// DialDirect dials address as BypassDialer does, for a flow of another
// application that the agent sends direct: its remote end does not join
// OwnEndpoints.
func DialDirect(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{Control: bypassControl}
	return d.DialContext(ctx, network, address)
}

// DialBypass dials address with BypassDialer.
func DialBypass(ctx context.Context, network, address string) (net.Conn, error) {
	return BypassDialer(0).DialContext(ctx, network, address)
}
