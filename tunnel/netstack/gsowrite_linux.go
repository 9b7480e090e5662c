package netstack

import (
	"encoding/binary"
	"errors"
	"os"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// virtioNetHdrLen is the size of the virtio-net header that precedes every
// packet on a Linux TUN opened with IFF_VNET_HDR.
const virtioNetHdrLen = 10

// rawGSOFile returns the file to write whole GSO segments to: the TUN's own
// file when the device takes virtio-net headers (wireguard/tun on Linux turns
// them on, and only then reads and writes in batches), else nil.
func rawGSOFile(dev tun.Device, batch int) *os.File {
	if batch <= 1 || !enableGSO {
		return nil
	}
	return dev.File()
}

// writeGSO writes a TCP segment that gVisor built larger than the MTU to the
// kernel as it is, with a virtio-net header asking for segmentation and the
// checksum (what a NIC doing TSO is given): the kernel delivers it to the
// local socket as one large segment. Cutting it into MSS-sized packets
// instead, each with a full checksum, only for the device to verify those
// checksums and copy the packets together again, cost a copy and two
// checksum passes over every byte sent to the client. It reports false when
// the segment must take that path (a single segment, an oversized one).
func (w *batchWriter) writeGSO(pkt *stack.PacketBuffer) bool {
	gso := pkt.GSOOptions
	size, iphLen, mss := pkt.Size(), int(gso.L3HdrLen), int(gso.MSS)
	if mss == 0 || size > 1<<16-1 || virtioNetHdrLen+size > len(w.gsoBuf) || size < iphLen+header.TCPMinimumSize {
		return false
	}
	buf := w.gsoBuf[:virtioNetHdrLen+size]
	p := buf[virtioNetHdrLen:]
	packetReadAt(pkt, p, 0)
	tcphLen := int(header.TCP(p[iphLen:]).DataOffset())
	hdrLen := iphLen + tcphLen
	if tcphLen < header.TCPMinimumSize || hdrLen > size || size-hdrLen <= mss {
		return false
	}
	var src, dst []byte
	gsoType := uint8(unix.VIRTIO_NET_HDR_GSO_TCPV4)
	if gso.Type == stack.GSOTCPv6 {
		gsoType = unix.VIRTIO_NET_HDR_GSO_TCPV6
		header.IPv6(p).SetPayloadLength(uint16(size - header.IPv6MinimumSize))
		src, dst = p[8:24], p[24:40]
	} else {
		ip := header.IPv4(p)
		ip.SetTotalLength(uint16(size))
		ip.SetChecksum(0)
		ip.SetChecksum(^checksum.Checksum(p[:iphLen], 0))
		src, dst = p[12:16], p[16:20]
	}
	// CHECKSUM_PARTIAL: the TCP checksum field holds the pseudo-header's
	// sum; the kernel completes it if it ever needs the real one.
	header.TCP(p[iphLen:]).SetChecksum(pseudoHeaderSum(unix.IPPROTO_TCP, src, dst, size-iphLen))
	h := buf[:virtioNetHdrLen]
	h[0], h[1] = unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType
	binary.NativeEndian.PutUint16(h[2:], uint16(hdrLen))
	binary.NativeEndian.PutUint16(h[4:], uint16(mss))
	binary.NativeEndian.PutUint16(h[6:], uint16(iphLen))
	binary.NativeEndian.PutUint16(h[8:], header.TCPChecksumOffset)

	w.flush() // what was queued before goes first
	if w.failed {
		w.s.stats.droppedOut.Add(1)
		return true
	}
	if tap := w.s.tapped(); tap != nil {
		tap(true, p)
	}
	if _, err := w.raw.Write(buf); err != nil {
		w.s.stats.droppedOut.Add(1)
		if errors.Is(err, os.ErrClosed) {
			w.failed = true
		} else {
			w.s.logWriteErr(err)
		}
		return true
	}
	w.s.stats.packetsOut.Add(1)
	return true
}
