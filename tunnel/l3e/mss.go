package l3e

import "encoding/binary"

// ClampMSS lowers the MSS option of a TCP SYN in pkt so that the segments of
// the connection fit an inner MTU of mtu, fixing the TCP checksum; it reports
// whether it changed pkt. Packets that are not SYNs with an MSS option are
// left alone. Both directions are clamped: a SYN from the device and one to it.
func ClampMSS(pkt []byte, mtu int) bool {
	var l4 []byte
	var hdr int
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4 && pkt[9] == ProtoTCP && binary.BigEndian.Uint16(pkt[6:])&0x1fff == 0:
		hdr = int(pkt[0]&0x0f) * 4
		if total := int(binary.BigEndian.Uint16(pkt[2:])); hdr < 20 || total > len(pkt) || total < hdr {
			return false
		} else {
			l4 = pkt[hdr:total]
		}
		hdr += 20
	case len(pkt) >= 40 && pkt[0]>>4 == 6 && pkt[6] == ProtoTCP:
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
		if end > len(pkt) {
			return false
		}
		l4, hdr = pkt[40:end], 40+20
	default:
		return false
	}
	if len(l4) < 20 || l4[13]&0x02 == 0 { // not a SYN
		return false
	}
	want := mtu - hdr
	if want < 536 {
		want = 536
	}
	off := int(l4[12]>>4) * 4
	if off < 20 || off > len(l4) {
		return false
	}
	opts := l4[20:off]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; {
		case kind == 0:
			return false
		case kind == 1:
			i++
			continue
		case i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts):
			return false
		case kind == 2 && opts[i+1] == 4:
			old := binary.BigEndian.Uint16(opts[i+2:])
			if int(old) <= want {
				return false
			}
			binary.BigEndian.PutUint16(opts[i+2:], uint16(want))
			// RFC 1624 incremental update: HC' = ~(~HC + ~m + m').
			sum := uint32(^binary.BigEndian.Uint16(l4[16:])) + uint32(^old) + uint32(want)
			for sum > 0xffff {
				sum = sum>>16 + sum&0xffff
			}
			binary.BigEndian.PutUint16(l4[16:], ^uint16(sum))
			return true
		default:
			i += int(opts[i+1])
		}
	}
	return false
}
