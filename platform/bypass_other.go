//go:build !linux

package platform

import "syscall"

// CanBypass reports whether unsteered flows can be sent direct on this OS.
// Elsewhere the agent's routes are not installed yet, so its own sockets need
// no mark; unsteered flows inside app prefixes are reset until the routers for
// macOS (IP_BOUND_IF) and Windows (IP_UNICAST_IF) land.
const CanBypass = false

func bypassControl(network, address string, c syscall.RawConn) error { return nil }
