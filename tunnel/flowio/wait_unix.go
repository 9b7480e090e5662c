//go:build unix

package flowio

import (
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketWaiter waits for a socket to have data (or an end, or an error) by
// peeking at it: the runtime's poller then waits for readability, as for a
// Read, but with no buffer of ours. A peek that fails has consumed the
// socket's error (a reset would read as a clean end next): it is returned.
func socketWaiter(r io.Reader) func() error {
	sc, ok := r.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() error {
		var b [1]byte
		var peekErr error
		err := rc.Read(func(fd uintptr) bool {
			_, _, peekErr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			return peekErr != unix.EAGAIN
		})
		if err != nil {
			return err
		}
		if peekErr != nil {
			return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("recvfrom", peekErr)}
		}
		return nil
	}
}
