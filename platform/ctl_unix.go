//go:build linux || darwin

package platform

import (
	"fmt"
	"math"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

var errConnRefused = syscall.ECONNREFUSED

// peerCred reads the peer's credentials from a unix socket connection.
func peerCred(c net.Conn) (Cred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Cred{}, fmt.Errorf("control connection is %T, not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var cred Cred
	var credErr error
	if err := raw.Control(func(fd uintptr) { cred, credErr = sockPeerCred(int(fd)) }); err != nil {
		return Cred{}, err
	}
	return cred, credErr
}

// PeerCred returns the credentials of the process on the other end of c.
func PeerCred(c net.Conn) (Cred, error) { return peerCred(c) }

// fileLimit is the process's soft limit on open descriptors; 0 when there is
// none to speak of.
func fileLimit() int {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil || r.Cur > math.MaxInt32 {
		return 0
	}
	return int(r.Cur)
}

// RaiseFileLimit raises the soft limit on open descriptors to the hard limit
// (or the most the OS takes) and returns both. The Go runtime does the same
// when the process starts, to the hard limit less one; this makes sure of it
// (another process may have lowered it since, with prlimit) and reports it.
func RaiseFileLimit() (soft, hard uint64, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, fmt.Errorf("descriptor limit: %w", err)
	}
	if want := maxFileLimit(r.Max); r.Cur+1 < want {
		raised := syscall.Rlimit{Cur: want, Max: r.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return r.Cur, r.Max, fmt.Errorf("raise the descriptor limit from %d to %d: %w", r.Cur, want, err)
		}
		r.Cur = want
	}
	return r.Cur, r.Max, nil
}

// connFD is c's descriptor number, -1 if it has none.
func connFD(c net.Conn) int {
	if cc, ok := c.(*ControlConn); ok {
		c = cc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}
