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
	rc, err := u.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
		ok = err == nil
	})
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
