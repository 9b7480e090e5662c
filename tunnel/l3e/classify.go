package l3e

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers the filter knows.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Flow is what the filter needs of one packet.
type Flow struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
	// Fragment is a later fragment of a packet: it carries no ports.
	Fragment bool
}

// ErrNotIP is a packet that is not a whole IPv4 or IPv6 header with the
// transport ports the filter needs.
var ErrNotIP = errors.New("l3e: not an IPv4/IPv6 packet")

// maxExtHeaders bounds the IPv6 extension-header walk.
const maxExtHeaders = 8

// Classify reads the addresses, protocol and ports of an IP packet. It never
// allocates and never reads past pkt.
func Classify(pkt []byte) (Flow, error) {
	if len(pkt) == 0 {
		return Flow{}, ErrNotIP
	}
	switch pkt[0] >> 4 {
	case 4:
		return classify4(pkt)
	case 6:
		return classify6(pkt)
	}
	return Flow{}, ErrNotIP
}

func classify4(pkt []byte) (Flow, error) {
	if len(pkt) < 20 {
		return Flow{}, ErrNotIP
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < 20 || total < ihl || total > len(pkt) {
		return Flow{}, ErrNotIP
	}
	f := Flow{
		Src:   netip.AddrFrom4([4]byte(pkt[12:16])),
		Dst:   netip.AddrFrom4([4]byte(pkt[16:20])),
		Proto: pkt[9],
	}
	if binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 {
		f.Fragment = true
		return f, nil
	}
	return ports(f, pkt[ihl:total])
}

func classify6(pkt []byte) (Flow, error) {
	if len(pkt) < 40 {
		return Flow{}, ErrNotIP
	}
	end := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
	if end > len(pkt) {
		return Flow{}, ErrNotIP
	}
	f := Flow{
		Src: netip.AddrFrom16([16]byte(pkt[8:24])),
		Dst: netip.AddrFrom16([16]byte(pkt[24:40])),
	}
	next, off := pkt[6], 40
	for range maxExtHeaders {
		var n int
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if off+2 > end {
				return Flow{}, ErrNotIP
			}
			n = (int(pkt[off+1]) + 1) * 8
		case 44: // fragment
			if off+8 > end {
				return Flow{}, ErrNotIP
			}
			if binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0 {
				f.Proto, f.Fragment = pkt[off], true
				return f, nil
			}
			n = 8
		case 51: // authentication header
			if off+2 > end {
				return Flow{}, ErrNotIP
			}
			n = (int(pkt[off+1]) + 2) * 4
		default:
			f.Proto = next
			return ports(f, pkt[off:end])
		}
		if off+n > end {
			return Flow{}, ErrNotIP
		}
		next, off = pkt[off], off+n
	}
	return Flow{}, ErrNotIP
}

// ports fills the ports of TCP and UDP flows from the transport header l4.
func ports(f Flow, l4 []byte) (Flow, error) {
	switch f.Proto {
	case ProtoTCP, ProtoUDP:
		if len(l4) < 4 {
			return Flow{}, ErrNotIP
		}
		f.SrcPort = binary.BigEndian.Uint16(l4)
		f.DstPort = binary.BigEndian.Uint16(l4[2:])
	}
	return f, nil
}

// Filter is a compiled set of routes. Built once per template and read
// without locks.
type Filter struct {
	routes []compiledRoute
}

type compiledRoute struct {
	prefix   netip.Prefix
	tcp, udp Ports
	icmp     bool
}

// NewFilter compiles routes, which must have been validated.
func NewFilter(routes []Route) (*Filter, error) {
	f := &Filter{}
	if ps := validateRoutes(routes); len(ps) > 0 {
		return nil, &TemplateError{Problems: ps}
	}
	for _, r := range routes {
		tcp, _ := ParsePorts(r.TCP)
		udp, _ := ParsePorts(r.UDP)
		f.routes = append(f.routes, compiledRoute{prefix: r.Prefix, tcp: tcp, udp: udp, icmp: r.ICMP})
	}
	return f, nil
}

// Allows reports whether a packet between the device and remote may pass,
// in either direction. The rule is stateless and symmetric: remote must be in
// a route allowing the protocol, and for TCP and UDP one of the two ports must
// be in the route's set (the service port: the device's connection to it, a
// server's connection to the device on it, and their replies). A later
// fragment, having no ports, passes only where every port is allowed.
func (f *Filter) Allows(remote netip.Addr, fl *Flow) bool {
	if f == nil {
		return false
	}
	for i := range f.routes {
		r := &f.routes[i]
		if !r.prefix.Contains(remote) {
			continue
		}
		var ps Ports
		switch fl.Proto {
		case ProtoICMP, ProtoICMPv6:
			return r.icmp
		case ProtoTCP:
			ps = r.tcp
		case ProtoUDP:
			ps = r.udp
		default:
			return false
		}
		if fl.Fragment {
			return ps.All()
		}
		return ps.Contains(fl.SrcPort) || ps.Contains(fl.DstPort)
	}
	return false
}

// Outbound reports whether a packet the device sends may pass.
func (f *Filter) Outbound(fl *Flow) bool { return f.Allows(fl.Dst, fl) }

// Inbound reports whether a packet sent to the device may pass.
func (f *Filter) Inbound(fl *Flow) bool { return f.Allows(fl.Src, fl) }
