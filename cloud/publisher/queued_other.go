//go:build !unix

package publisher

import "syscall"

// queuedFunc: this system cannot tell without blocking (see queued_unix.go).
func queuedFunc(syscall.Conn) func() bool { return nil }
