//go:build unix

package l7

import (
	"errors"
	"syscall"
)

// refused reports whether a dial was refused: the PoP's host answered, but
// nothing listens on its port.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
