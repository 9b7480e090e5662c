//go:build unix

package l7

import (
	"errors"
	"syscall"
)

// failedFast reports whether a dial failed at once: connection refused, or
// no route to the network or host.
func failedFast(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.EHOSTUNREACH)
}
