package pathmtu

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Clamped reports whether this OS clamps the MSS of the sockets given to
// Control.
const Clamped = true

func setMSS(fd uintptr, mss int) error {
	if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, mss); err != nil {
		return fmt.Errorf("pathmtu: set TCP_MAXSEG %d: %w", mss, err)
	}
	return nil
}
