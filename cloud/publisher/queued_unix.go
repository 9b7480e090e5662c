//go:build unix

package publisher

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// queuedFunc returns a function that reports, without blocking, whether a
// datagram is waiting on c, so that a relay can send those that came
// together in one write; nil when c cannot tell.
func queuedFunc(c syscall.Conn) func() bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	return func() bool {
		var b [1]byte
		waiting := false
		rc.Control(func(fd uintptr) {
			_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			waiting = err == nil
		})
		return waiting
	}
}
