package l7

import (
	"errors"

	"golang.org/x/sys/windows"
)

// failedFast reports whether a dial failed at once: connection refused, or
// no route to the network or host.
func failedFast(err error) bool {
	return errors.Is(err, windows.WSAECONNREFUSED) || errors.Is(err, windows.WSAENETUNREACH) ||
		errors.Is(err, windows.WSAEHOSTUNREACH)
}
