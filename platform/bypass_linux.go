package platform

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// CanBypass reports whether unsteered flows can be sent direct on this OS.
const CanBypass = true

func bypassControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, BypassMark)
	})
	if err != nil {
		return err
	}
	return serr
}
