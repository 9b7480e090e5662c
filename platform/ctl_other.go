//go:build !linux && !darwin

package platform

import (
	"errors"
	"net"
	"syscall"
)

var errConnRefused = syscall.Errno(10061) // WSAECONNREFUSED

// PeerCred is not available for AF_UNIX sockets on this OS yet: every peer is
// treated as unprivileged, so mutating control calls are refused rather than
// allowed unchecked.
func PeerCred(c net.Conn) (Cred, error) {
	return Cred{UID: -1, PID: -1}, errors.New("peer credentials are not supported on this OS")
}
