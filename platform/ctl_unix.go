//go:build linux || darwin

package platform

import (
	"fmt"
	"net"
	"syscall"
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
