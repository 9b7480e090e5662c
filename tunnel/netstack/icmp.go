package netstack

import (
	"errors"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// A UDPHandler refuses a flow with an ICMP destination unreachable by
// wrapping one of these errors; the client's socket then fails at once
// instead of waiting for an answer that will not come. Any other error drops
// the datagram silently (the next one of the flow tries again).
var (
	// ErrPortUnreachable answers with port unreachable: a connected socket
	// sees ECONNREFUSED, as for a closed port.
	ErrPortUnreachable = errors.New("port unreachable")
	// ErrProhibited answers with "communication administratively
	// prohibited": policy refuses the flow (a connected socket on Linux sees
	// EHOSTUNREACH).
	ErrProhibited = errors.New("communication administratively prohibited")
)

// The quoted part of the refused datagram is as much as keeps the ICMP
// message within the minimum datagram every host accepts: 576 bytes for
// IPv4 (RFC 1812 4.3.2.3), 1280 for IPv6 (RFC 4443 2.4).
const (
	maxQuoteV4 = 576 - header.IPv4MinimumSize - header.ICMPv4MinimumSize
	maxQuoteV6 = header.IPv6MinimumMTU - header.IPv6MinimumSize - header.ICMPv6DstUnreachableMinimumSize
)

// quoteOf copies the start of an inbound packet, from its IP header on, for
// an ICMP error about it.
func quoteOf(pkt *stack.PacketBuffer) []byte {
	v := stack.PayloadSince(pkt.NetworkHeader())
	defer v.Release()
	b := v.AsSlice()
	limit := maxQuoteV4
	if pkt.NetworkProtocolNumber == header.IPv6ProtocolNumber {
		limit = maxQuoteV6
	}
	return append([]byte(nil), b[:min(len(b), limit)]...)
}

// unreachCode is the kind of ICMP destination unreachable a refusal sends.
type unreachCode uint8

const (
	portUnreachable unreachCode = iota
	adminProhibited
	hostUnreachable
)

// refusal maps a handler's error to the ICMP answer it asks for.
func refusal(err error) (unreachCode, bool) {
	switch {
	case errors.Is(err, ErrProhibited):
		return adminProhibited, true
	case errors.Is(err, ErrPortUnreachable):
		return portUnreachable, true
	case errors.Is(err, ErrHostUnreachable):
		return hostUnreachable, true
	}
	return 0, false
}

// unreachable builds the ICMP destination unreachable (port or host
// unreachable, or administratively prohibited) that answers the packet quote
// starts with, sent from its destination to its source. It reports false for
// packets no ICMP error may answer (RFC 1122 3.2.2): to or from a multicast
// or broadcast address, from an unspecified one, or a non-initial fragment.
func unreachable(quote []byte, code unreachCode) ([]byte, bool) {
	switch header.IPVersion(quote) {
	case header.IPv4Version:
		return unreachableV4(quote, code)
	case header.IPv6Version:
		return unreachableV6(quote, code)
	}
	return nil, false
}

func unreachableV4(quote []byte, code unreachCode) ([]byte, bool) {
	in := header.IPv4(quote)
	if len(quote) < header.IPv4MinimumSize || len(quote) < int(in.HeaderLength()) {
		return nil, false
	}
	src, dst := in.SourceAddress(), in.DestinationAddress()
	if in.FragmentOffset() != 0 || !unicastV4(src) || !unicastV4(dst) {
		return nil, false
	}
	icmpCode := [...]header.ICMPv4Code{portUnreachable: header.ICMPv4PortUnreachable,
		adminProhibited: header.ICMPv4AdminProhibited, hostUnreachable: header.ICMPv4HostUnreachable}[code]
	b := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(quote))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		TTL:         64,
		Protocol:    uint8(header.ICMPv4ProtocolNumber),
		SrcAddr:     dst,
		DstAddr:     src,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(b[header.IPv4MinimumSize:])
	icmp.SetType(header.ICMPv4DstUnreachable)
	icmp.SetCode(icmpCode)
	copy(icmp[header.ICMPv4MinimumSize:], quote)
	icmp.SetChecksum(header.ICMPv4Checksum(icmp[:header.ICMPv4MinimumSize], checksum.Checksum(quote, 0)))
	return b, true
}

func unicastV4(a tcpip.Address) bool {
	b := a.As4()
	return !a.Unspecified() && b[0] < 224 && a != header.IPv4Broadcast
}

func unreachableV6(quote []byte, code unreachCode) ([]byte, bool) {
	if len(quote) < header.IPv6MinimumSize {
		return nil, false
	}
	in := header.IPv6(quote)
	src, dst := in.SourceAddress(), in.DestinationAddress()
	if src.Unspecified() || header.IsV6MulticastAddress(src) || header.IsV6MulticastAddress(dst) {
		return nil, false
	}
	icmpCode := [...]header.ICMPv6Code{portUnreachable: header.ICMPv6PortUnreachable,
		adminProhibited: header.ICMPv6Prohibited, hostUnreachable: header.ICMPv6AddressUnreachable}[code]
	n := header.ICMPv6DstUnreachableMinimumSize + len(quote)
	b := make([]byte, header.IPv6MinimumSize+n)
	header.IPv6(b).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(n),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          64,
		SrcAddr:           dst,
		DstAddr:           src,
	})
	icmp := header.ICMPv6(b[header.IPv6MinimumSize:])
	icmp.SetType(header.ICMPv6DstUnreachable)
	icmp.SetCode(icmpCode)
	copy(icmp[header.ICMPv6DstUnreachableMinimumSize:], quote)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
		Header:      icmp[:header.ICMPv6DstUnreachableMinimumSize],
		Src:         dst,
		Dst:         src,
		PayloadCsum: checksum.Checksum(quote, 0),
		PayloadLen:  len(quote),
	}))
	return b, true
}

// sendICMP queues an ICMP message built outside gVisor for the TUN writer.
func (s *Stack) sendICMP(b []byte) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	defer pkt.DecRef()
	var l stack.PacketBufferList
	l.PushBack(pkt)
	s.link.WritePackets(l) // fails only once the stack is closing
}
