package netstack

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// ICMP echo requests from the OS never reach the userspace stack. gVisor
// would answer an echo to any address it is handed, stub addresses and app
// prefixes included, so `ping web.corp.test` would get replies that no app
// sent, with the timing of this process: a fake. Instead each well-formed
// echo request goes to the EchoHandler, which carries it to the real host
// and answers it with ReplyEcho when (and only if) the real reply comes, or
// refuses it with RefuseEcho. Without a handler, and for requests this
// package cannot carry (fragments, bad checksums, IPv6 extension headers),
// the request is dropped and counted in Stats.EchoDropped: no reply is what
// an unreachable host looks like.

// Echo is one ICMP echo request the OS routed into the TUN device.
type Echo struct {
	// Src is the pinging host (the OS); Dst the address it pinged, which
	// the reply comes from.
	Src, Dst netip.Addr
	ID, Seq  uint16
	// Data is the echo's data, after the identifier and sequence number. It
	// belongs to the handler.
	Data []byte
	// quote is the start of the request, for an ICMP error about it.
	quote []byte
}

// EchoHandler receives every echo request on the TUN reader goroutine: it
// must not block (it hands the echo to a goroutine of its own, or drops it).
type EchoHandler func(Echo)

// ErrHostUnreachable refuses an echo with ICMP destination (host, for IPv6
// address) unreachable: the tunnel tried and the host cannot be reached.
var ErrHostUnreachable = errors.New("host unreachable")

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

// parseEcho reads an echo request that isEchoRequest recognised and whose IP
// header checksumsValid has checked. It copies what it keeps, so b may be
// reused. It reports false for what cannot be carried: the first fragment
// of a larger echo (the agent does not reassemble), a code other than 0, a
// truncated message or a bad ICMP checksum.
func parseEcho(b []byte) (Echo, bool) {
	var e Echo
	var icmp []byte
	switch header.IPVersion(b) {
	case header.IPv4Version:
		ip := header.IPv4(b)
		if !ip.IsValid(len(b)) || ip.More() {
			return e, false
		}
		icmp = b[ip.HeaderLength():ip.TotalLength()]
		if len(icmp) < header.ICMPv4MinimumSize || checksum.Checksum(icmp, 0) != 0xffff {
			return e, false
		}
		e.Src, e.Dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	case header.IPv6Version:
		ip := header.IPv6(b)
		if !ip.IsValid(len(b)) {
			return e, false
		}
		icmp = b[header.IPv6MinimumSize : header.IPv6MinimumSize+int(ip.PayloadLength())]
		if len(icmp) < header.ICMPv6EchoMinimumSize ||
			checksum.Checksum(icmp, pseudoHeaderSum(uint8(header.ICMPv6ProtocolNumber), b[8:24], b[24:40], len(icmp))) != 0xffff {
			return e, false
		}
		e.Src, e.Dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return e, false
	}
	if icmp[1] != 0 { // code
		return e, false
	}
	e.ID, e.Seq = binary.BigEndian.Uint16(icmp[4:]), binary.BigEndian.Uint16(icmp[6:])
	e.Data = append([]byte(nil), icmp[8:]...)
	limit := maxQuoteV4
	if e.Src.Is6() {
		limit = maxQuoteV6
	}
	e.quote = append([]byte(nil), b[:min(len(b), limit)]...)
	return e, true
}

// echoReply builds the echo reply to e carrying data: from e.Dst to e.Src,
// with e's identifier and sequence number.
func echoReply(e Echo, data []byte) []byte {
	if e.Dst.Is4() {
		b := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(data))
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(b)),
			TTL:         64,
			Protocol:    uint8(header.ICMPv4ProtocolNumber),
			SrcAddr:     tcpip.AddrFromSlice(e.Dst.AsSlice()),
			DstAddr:     tcpip.AddrFromSlice(e.Src.AsSlice()),
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		icmp := header.ICMPv4(b[header.IPv4MinimumSize:])
		icmp.SetType(header.ICMPv4EchoReply)
		icmp.SetIdent(e.ID)
		icmp.SetSequence(e.Seq)
		copy(icmp.Payload(), data)
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
		return b
	}
	n := header.ICMPv6EchoMinimumSize + len(data)
	b := make([]byte, header.IPv6MinimumSize+n)
	header.IPv6(b).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(n),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          64,
		SrcAddr:           tcpip.AddrFromSlice(e.Dst.AsSlice()),
		DstAddr:           tcpip.AddrFromSlice(e.Src.AsSlice()),
	})
	icmp := header.ICMPv6(b[header.IPv6MinimumSize:])
	icmp.SetType(header.ICMPv6EchoReply)
	icmp.SetIdent(e.ID)
	icmp.SetSequence(e.Seq)
	copy(icmp.Payload(), data)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: tcpip.AddrFromSlice(e.Dst.AsSlice()), Dst: tcpip.AddrFromSlice(e.Src.AsSlice())}))
	return b
}

// MaxEchoData is the most data an echo reply may carry: what fits in one
// IPv4 packet. ReplyEcho refuses more.
const MaxEchoData = 1<<16 - 1 - header.IPv4MinimumSize - header.ICMPv4MinimumSize

// ErrEchoTooLarge is ReplyEcho's answer to data longer than MaxEchoData.
var ErrEchoTooLarge = errors.New("netstack: echo reply data too large")

// ReplyEcho writes the echo reply to e into the TUN device, from the address
// e pinged, carrying data (normally the data of the real host's reply). It
// is safe to call from any goroutine, once per echo; after Close it does
// nothing.
func (s *Stack) ReplyEcho(e Echo, data []byte) error {
	if len(data) > MaxEchoData {
		return ErrEchoTooLarge
	}
	s.sendICMP(echoReply(e, data))
	return nil
}

// RefuseEcho answers e with the ICMP destination unreachable that err asks
// for (ErrProhibited, ErrHostUnreachable); any other error leaves e
// unanswered, as a lost packet.
func (s *Stack) RefuseEcho(e Echo, err error) {
	code, ok := refusal(err)
	if !ok || code == portUnreachable {
		return
	}
	if b, ok := unreachable(e.quote, code); ok {
		s.sendICMP(b)
	}
}

// handleEcho takes an echo request off the inbound path: it goes to the
// handler, or is dropped and counted.
func (s *Stack) handleEcho(b []byte) {
	if s.cfg.Echo == nil {
		s.stats.echoDropped.Add(1)
		return
	}
	e, ok := parseEcho(b)
	if !ok {
		s.stats.echoDropped.Add(1)
		return
	}
	s.cfg.Echo(e)
}
