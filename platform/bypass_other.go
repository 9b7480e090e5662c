//go:build !linux && !windows && !darwin

package platform

import (
	"syscall"

	"github.com/ztagent/ztagent/internal/pathmtu"
)

// CanBypass reports whether unsteered flows can be sent direct on this OS.
// Elsewhere the agent's routes are not installed (NewRouter fails), so its own
// sockets need no mark; unsteered flows inside app prefixes are reset.
const CanBypass = false

// bypassControl clamps a TCP socket's MSS where pathmtu can.
func bypassControl(network, address string, c syscall.RawConn) error {
	return pathmtu.Control(network, address, c)
}
