package netstack

import (
	"errors"
	"os"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// rawTUNReader returns the TUN's file for readRaw when the device takes
// virtio-net headers, else nil. The device is first told to hand over TCP
// segments large (TSO) but UDP ones cut (no USO): readRaw gives gVisor a
// large TCP segment whole and has no use for a large UDP one.
func rawTUNReader(dev tun.Device, batch int, log *zap.Logger) *os.File {
	if batch <= 1 || !enableGRO {
		return nil
	}
	f := dev.File()
	if f == nil {
		return nil
	}
	sc, err := f.SyscallConn()
	if err == nil {
		cerr := sc.Control(func(fd uintptr) {
			err = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6)
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		log.Info("TUN offloads unchanged; packets are read through the device", zap.Error(err))
		return nil
	}
	return f
}

// readRaw reads the TUN's file directly, one packet or one large TCP
// segment (the kernel's TSO) per read, and gives each to gVisor as it came.
// wireguard/tun would cut a large segment into MSS-sized packets with a full
// checksum each, which the reader then verified and GRO put back together:
// two checksum passes, a copy and ~45 packet buffers per 64 KiB sent by the
// client, where here there are none of the first three and one buffer. A
// packet whose checksum the kernel left to us (CHECKSUM_PARTIAL) comes from
// a local socket and is taken as valid; any other is verified.
func (s *Stack) readRaw(f *os.File) {
	buf := make([]byte, virtioNetHdrLen+gsoMaxSize+1)
	failures := 0 // consecutive read errors
	for {
		n, err := f.Read(buf)
		if n > 0 {
			s.stats.packetsIn.Add(1)
			if d := s.link.dispatcherOrNil(); d != nil {
				s.injectRaw(d, buf[:n])
			}
		}
		if err == nil {
			failures = 0
			continue
		}
		s.stats.readErrs.Add(1)
		if errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADFD) || s.ctx.Err() != nil {
			return
		}
		if failures++; failures >= maxReadFailures {
			s.log.Error("TUN reads keep failing; no more packets will be received", zap.Error(err))
			return
		}
		s.log.Warn("TUN read failed", zap.Error(err))
	}
}

// injectRaw hands one read (a virtio-net header and a packet) to gVisor.
func (s *Stack) injectRaw(d stack.NetworkDispatcher, b []byte) {
	if len(b) <= virtioNetHdrLen {
		s.stats.droppedIn.Add(1)
		return
	}
	flags, gsoType, p := b[0], b[1], b[virtioNetHdrLen:]
	valid := false
	switch gsoType {
	case unix.VIRTIO_NET_HDR_GSO_NONE:
		valid = flags&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
	case unix.VIRTIO_NET_HDR_GSO_TCPV4, unix.VIRTIO_NET_HDR_GSO_TCPV6:
		if !fixLargeSegment(p, gsoType) {
			s.stats.droppedIn.Add(1)
			return
		}
		valid = true
	default:
		s.stats.droppedIn.Add(1)
		return
	}
	if tap := s.tapped(); tap != nil {
		tap(false, p)
	}
	if pkt := s.inboundPacket(p, valid); pkt != nil {
		d.DeliverNetworkPacket(pkt.NetworkProtocolNumber, pkt)
		pkt.DecRef()
	}
}

// fixLargeSegment sets the IP length fields of a large TCP segment (TSO) to
// its whole size, and the IPv4 header checksum to match; false when the
// packet is not what its virtio-net header says or exceeds an IP packet.
func fixLargeSegment(p []byte, gsoType uint8) bool {
	if gsoType == unix.VIRTIO_NET_HDR_GSO_TCPV6 {
		if header.IPVersion(p) != header.IPv6Version || len(p) < header.IPv6MinimumSize || len(p)-header.IPv6MinimumSize > 1<<16-1 {
			return false
		}
		header.IPv6(p).SetPayloadLength(uint16(len(p) - header.IPv6MinimumSize))
		return true
	}
	if header.IPVersion(p) != header.IPv4Version || len(p) < header.IPv4MinimumSize || len(p) > 1<<16-1 {
		return false
	}
	ip := header.IPv4(p)
	hl := int(ip.HeaderLength())
	if hl < header.IPv4MinimumSize || hl > len(p) {
		return false
	}
	ip.SetTotalLength(uint16(len(p)))
	ip.SetChecksum(0)
	ip.SetChecksum(^checksum.Checksum(p[:hl], 0))
	return true
}
