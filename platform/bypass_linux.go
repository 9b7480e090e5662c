package platform

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ztagent/ztagent/internal/pathmtu"
)

// CanBypass reports whether unsteered flows can be sent direct on this OS.
const CanBypass = true

// bypassControl marks the socket and clamps a TCP socket's MSS to a path of
// pathmtu.SafeMTU, so that the agent's own connections survive an MTU black
// hole further along the path. Setting a mark needs CAP_NET_ADMIN; a
// process without it (tests as a user) installs no agent routes either, so
// it goes unmarked rather than failing.
func bypassControl(network, address string, c syscall.RawConn) error {
	if err := pathmtu.Control(network, address, c); err != nil {
		return err
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, BypassMark)
	})
	if err != nil {
		return err
	}
	if errors.Is(serr, unix.EPERM) {
		return nil
	}
	return serr
}
