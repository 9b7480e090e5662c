// Package l3etest builds IP packets for tests of the L3E tunnel on both ends
// (the client in tunnel/l3e and the gateway in cloud/gateway).
package l3etest

import (
	"encoding/binary"
	"net/netip"
)

// Packet returns an IPv4 or IPv6 packet from src to dst carrying proto with
// the given ports (TCP: a SYN with an MSS option of 1460) and payload.
func Packet(src, dst netip.AddrPort, proto uint8, payload []byte) []byte {
	var l4 []byte
	switch proto {
	case 6:
		l4 = make([]byte, 24)
		binary.BigEndian.PutUint16(l4[0:], src.Port())
		binary.BigEndian.PutUint16(l4[2:], dst.Port())
		l4[12] = 6 << 4 // data offset: 24 bytes
		l4[13] = 0x02   // SYN
		l4[20], l4[21] = 2, 4
		binary.BigEndian.PutUint16(l4[22:], 1460)
	case 17:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], src.Port())
		binary.BigEndian.PutUint16(l4[2:], dst.Port())
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(payload)))
	default:
		l4 = []byte{8, 0, 0, 0, 0, 0, 0, 0} // ICMP echo request
	}
	l4 = append(l4, payload...)
	if src.Addr().Is4() {
		h := make([]byte, 20, 20+len(l4))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		h[8], h[9] = 64, proto
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		binary.BigEndian.PutUint16(h[10:], ^sum(h, 0))
		return append(h, l4...)
	}
	h := make([]byte, 40, 40+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6], h[7] = proto, 64
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, l4...)
}

func sum(b []byte, acc uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// FixTCPChecksum sets the TCP checksum of an IPv4 packet.
func FixTCPChecksum(pkt []byte) {
	ihl := int(pkt[0]&0x0f) * 4
	l4 := pkt[ihl:]
	l4[16], l4[17] = 0, 0
	var pseudo [12]byte
	copy(pseudo[:], pkt[12:20])
	pseudo[9] = 6
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(l4)))
	acc := uint32(sum(pseudo[:], 0))
	binary.BigEndian.PutUint16(l4[16:], ^sum(l4, acc))
}
