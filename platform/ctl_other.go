//go:build !linux && !darwin && !windows

package platform

import (
	"errors"
	"net"
	"syscall"
)

var errConnRefused = syscall.ECONNREFUSED

// PeerCred is not available for AF_UNIX sockets on this OS yet: every peer is
// treated as unprivileged, so mutating control calls are refused rather than
// allowed unchecked.
func PeerCred(c net.Conn) (Cred, error) {
	return Cred{UID: -1, PID: -1}, errors.New("peer credentials are not supported on this OS")
}

// Descriptors are not counted on this OS: no reserve is kept for them.
func fileLimit() int               { return 0 }
func countOpenFiles() (int, error) { return 0, errors.ErrUnsupported }
func connFD(net.Conn) int          { return -1 }

// RaiseFileLimit does nothing on this OS, which has no such limit.
func RaiseFileLimit() (soft, hard uint64, err error) { return 0, 0, nil }
