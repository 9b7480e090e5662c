// Package pathmtu keeps the long-lived TCP connections between ztagent and
// the cloud (tenant API, PoP, publisher) alive across an MTU black hole: a
// hop further along the path with a smaller MTU than the interfaces at either
// end, whose ICMP "fragmentation needed" is dropped, so that path MTU
// discovery never learns of it and every full-sized segment is lost. The ends
// cannot see such a hop, and Linux enables packetization-layer probing
// (tcp_mtu_probing) only per network namespace, never per socket; so both ends
// clamp the MSS of their own sockets (TCP_MAXSEG, set before the handshake)
// to what a path of SafeMTU carries. The dialling end advertises it in its
// SYN and the accepting end in its SYN-ACK, and each caps what it sends by it,
// so either end alone is enough. The kernel lowers it further for an
// interface with a smaller MTU. The cost is a few percent more segments.
package pathmtu

import (
	"net/netip"
	"syscall"
)

// SafeMTU is the path MTU the clamped sockets fit: 1280, the IPv6 minimum,
// which every IPv6 path must carry and IPv4 paths in practice do (Tailscale's
// default TUN MTU and Cloudflare WARP's for the same reason).
const SafeMTU = 1280

const (
	tcpHeader  = 20
	ipv4Header = 20
	ipv6Header = 40
)

// MSS returns the TCP MSS for a SafeMTU path to or from addr ("ip:port");
// an address that does not parse gets the IPv6 value, the smaller one.
// TCP options (timestamps) are taken out of the MSS by the sender, so a
// segment of this MSS fills the path exactly.
func MSS(addr string) int {
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Unmap().Is4() {
		return SafeMTU - ipv4Header - tcpHeader
	}
	return SafeMTU - ipv6Header - tcpHeader
}

// Control clamps the MSS of a TCP socket; it is a net.Dialer or
// net.ListenConfig Control function (the option must be set before connect
// or listen). Other networks are left alone.
func Control(network, address string, c syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil
	}
	var serr error
	if err := c.Control(func(fd uintptr) { serr = setMSS(fd, MSS(address)) }); err != nil {
		return err
	}
	return serr
}
