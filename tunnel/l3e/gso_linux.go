package l3e

import (
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoSupported reports whether the kernel segments UDP for u (UDP_SEGMENT,
// Linux 4.18).
func gsoSupported(u *net.UDPConn) bool {
	return control(u, func(fd int) error {
		_, err := unix.GetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT)
		return err
	})
}

// control runs fn on u's descriptor and reports whether it succeeded.
func control(u *net.UDPConn, fn func(fd int) error) bool {
	rc, err := u.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) { ok = fn(int(fd)) == nil })
	return ok
}

// gsoControl returns oob (reused when large enough) holding a UDP_SEGMENT
// control message of segment size.
func gsoControl(oob []byte, size int) []byte {
	n := unix.CmsgSpace(2)
	if cap(oob) < n {
		oob = make([]byte, n)
	}
	oob = oob[:n]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(size)
	return oob
}

// gsoRefused reports whether err says the path cannot segment (a device
// without checksum offload): the socket then sends one datagram a record.
func gsoRefused(err error) bool { return errors.Is(err, unix.EIO) }

// groEnable asks the kernel to hand u's datagrams of one flow over coalesced
// (UDP_GRO, Linux 5.0): a GSO batch from the peer then arrives as it left.
func groEnable(u *net.UDPConn) bool {
	return control(u, func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1) })
}

// groSize reads the segment size of a coalesced datagram from its control
// messages; 0 when it is not coalesced.
func groSize(oob []byte) int {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			return int(*(*int32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])))
		}
		oob = oob[min(len(oob), unix.CmsgSpace(l-unix.CmsgLen(0))):]
	}
	return 0
}
