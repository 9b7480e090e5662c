package netstack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// addGSO splits a TCP segment that gVisor built larger than the MTU (host
// GSO) into MSS-sized packets, as a NIC doing TSO would, directly into batch
// slots. The device may coalesce them again on its way into the kernel; the
// gain is that gVisor's TCP sender handles one 64 KiB segment instead of ~45.
func (w *batchWriter) addGSO(pkt *stack.PacketBuffer) {
	gso := pkt.GSOOptions
	size := pkt.Size()
	iphLen := int(gso.L3HdrLen)
	var hdr [header.IPv6MinimumSize + 8 + header.TCPHeaderMaximumSize]byte
	if iphLen+header.TCPMinimumSize > len(hdr) || size < iphLen+header.TCPMinimumSize {
		w.s.stats.droppedOut.Add(1)
		return
	}
	packetReadAt(pkt, hdr[:iphLen+header.TCPMinimumSize], 0)
	tcphLen := int(header.TCP(hdr[iphLen:]).DataOffset())
	hdrLen := iphLen + tcphLen
	if tcphLen < header.TCPMinimumSize || hdrLen > len(hdr) || size < hdrLen {
		w.s.stats.droppedOut.Add(1)
		return
	}
	packetReadAt(pkt, hdr[iphLen+header.TCPMinimumSize:hdrLen], iphLen+header.TCPMinimumSize)
	isV6 := gso.Type == stack.GSOTCPv6
	mss := int(gso.MSS)
	if mss == 0 {
		// gVisor marks a connection's packets for GSO before it knows the
		// MSS (the SYN-ACK, ACKs while the handshake waits): one segment.
		mss = max(size-hdrLen, 1)
	}
	seq := header.TCP(hdr[iphLen:]).SequenceNumber()
	flags := header.TCP(hdr[iphLen:]).Flags()
	var id uint16
	if !isV6 {
		id = header.IPv4(hdr[:]).ID()
	}
	for off, i := hdrLen, 0; off < size || (off == size && i == 0); off, i = off+mss, i+1 {
		chunk := min(mss, size-off)
		if hdrLen+chunk > w.size-tunOffset {
			w.s.stats.droppedOut.Add(1)
			return
		}
		if len(w.out) == len(w.bufs) {
			w.flush()
		}
		buf := w.buf(len(w.out))[tunOffset:]
		seg := buf[:hdrLen+chunk]
		copy(seg, hdr[:hdrLen])
		packetReadAt(pkt, seg[hdrLen:], off)
		last := off+chunk >= size
		segFlags := flags
		if !last {
			segFlags &^= header.TCPFlagFin | header.TCPFlagPsh
		}
		if i > 0 {
			segFlags &^= header.TCPFlagCwr
		}
		fixSegment(seg, iphLen, isV6, id+uint16(i), seq+uint32(i*mss), segFlags)
		w.out = append(w.out, w.bufs[len(w.out)][:tunOffset+len(seg)])
	}
}

// fixSegment rewrites the lengths, IPv4 ID, sequence number, flags and
// checksums of one segment cut from a GSO packet.
func fixSegment(seg []byte, iphLen int, isV6 bool, id uint16, seq uint32, flags header.TCPFlags) {
	var src, dst []byte
	if isV6 {
		ip := header.IPv6(seg)
		ip.SetPayloadLength(uint16(len(seg) - header.IPv6MinimumSize))
		src, dst = seg[8:24], seg[24:40]
	} else {
		ip := header.IPv4(seg)
		ip.SetTotalLength(uint16(len(seg)))
		ip.SetID(id)
		ip.SetChecksum(0)
		ip.SetChecksum(^checksum.Checksum(seg[:iphLen], 0))
		src, dst = seg[12:16], seg[16:20]
	}
	tcp := header.TCP(seg[iphLen:])
	tcp.SetSequenceNumber(seq)
	tcp.SetFlags(uint8(flags))
	tcp.SetChecksum(0)
	sum := pseudoHeaderSum(6, src, dst, len(tcp))
	tcp.SetChecksum(^checksum.Checksum(tcp, sum))
}

// pseudoHeaderSum is the (uncomplemented) checksum of a TCP/UDP pseudo-header.
func pseudoHeaderSum(proto uint8, src, dst []byte, l4Len int) uint16 {
	var tail [4]byte
	tail[1] = proto
	binary.BigEndian.PutUint16(tail[2:], uint16(l4Len))
	sum := checksum.Checksum(src, 0)
	sum = checksum.Checksum(dst, sum)
	return checksum.Checksum(tail[:], sum)
}

// packetReadAt copies len(dst) bytes of pkt, starting off bytes into the
// packet (network header included), without allocating.
func packetReadAt(pkt *stack.PacketBuffer, dst []byte, off int) {
	vl, skip := pkt.AsViewList()
	skip += off
	n := 0
	for v := vl.Front(); v != nil && n < len(dst); v = v.Next() {
		b := v.AsSlice()
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		n += copy(dst[n:], b[skip:])
		skip = 0
	}
}

// copyPacket copies the whole packet into dst and returns its length, or -1
// if it does not fit.
func copyPacket(dst []byte, pkt *stack.PacketBuffer) int {
	size := pkt.Size()
	if size > len(dst) {
		return -1
	}
	packetReadAt(pkt, dst[:size], 0)
	return size
}

// checksumsValid verifies the IPv4 header checksum and, for unfragmented TCP
// and UDP, the transport checksum, as gVisor would have. Packets it cannot
// check (fragments, IPv6 extension headers) pass: they come from the local
// kernel, and gVisor validates ICMP itself.
func checksumsValid(b []byte) bool {
	var (
		proto    uint8
		l4       []byte
		src, dst []byte
	)
	switch header.IPVersion(b) {
	case header.IPv4Version:
		ip := header.IPv4(b)
		if !ip.IsValid(len(b)) {
			return false
		}
		hl := int(ip.HeaderLength())
		if checksum.Checksum(b[:hl], 0) != 0xffff {
			return false
		}
		if ip.More() || ip.FragmentOffset() != 0 {
			return true
		}
		proto, l4, src, dst = ip.Protocol(), b[hl:ip.TotalLength()], b[12:16], b[16:20]
	case header.IPv6Version:
		ip := header.IPv6(b)
		if !ip.IsValid(len(b)) {
			return false
		}
		proto = ip.NextHeader()
		l4 = b[header.IPv6MinimumSize : header.IPv6MinimumSize+int(ip.PayloadLength())]
		src, dst = b[8:24], b[24:40]
	default:
		return false
	}
	switch proto {
	case 6:
		if len(l4) < header.TCPMinimumSize {
			return false
		}
	case 17:
		if len(l4) < header.UDPMinimumSize {
			return false
		}
		if binary.BigEndian.Uint16(l4[6:]) == 0 {
			// No UDP checksum: allowed over IPv4 only.
			return header.IPVersion(b) == header.IPv4Version
		}
	default:
		return true
	}
	return checksum.Checksum(l4, pseudoHeaderSum(proto, src, dst, len(l4))) == 0xffff
}
