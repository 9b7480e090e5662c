package netstack

import "gvisor.dev/gvisor/pkg/tcpip/header"

// ICMP echo requests from the OS are dropped before the userspace stack sees
// them. gVisor would answer an echo to any address it is handed, stub
// addresses and app prefixes included, so `ping web.corp.test` would get
// replies that no app sent, with the timing of this process: a fake. Until
// echo is carried through the tunnel, a ping gets no reply (and Stats counts
// it), which is what an unreachable host looks like.

// isEchoRequest reports whether b, an IP packet, is an ICMPv4 or ICMPv6 echo
// request. An IPv6 echo request behind extension headers is not recognised
// (and gVisor would still answer it); ping(8) sends none.
func isEchoRequest(b []byte) bool {
	switch header.IPVersion(b) {
	case header.IPv4Version:
		if len(b) < header.IPv4MinimumSize {
			return false
		}
		ip := header.IPv4(b)
		hl := int(ip.HeaderLength())
		if ip.TransportProtocol() != header.ICMPv4ProtocolNumber || ip.FragmentOffset() != 0 ||
			hl < header.IPv4MinimumSize || len(b) < hl+1 {
			return false
		}
		return header.ICMPv4Type(b[hl]) == header.ICMPv4Echo
	case header.IPv6Version:
		if len(b) < header.IPv6MinimumSize+1 {
			return false
		}
		ip := header.IPv6(b)
		return ip.TransportProtocol() == header.ICMPv6ProtocolNumber &&
			header.ICMPv6Type(b[header.IPv6MinimumSize]) == header.ICMPv6EchoRequest
	}
	return false
}
