//go:build linux || darwin

package platform

import (
	"fmt"
	"syscall"

	"golang.org/x/net/bpf"
)

// setKernelFilter compiles the program for eps on link lh and gives it to
// the kernel: set runs on the capture's descriptor (SO_ATTACH_FILTER on
// Linux, BIOCSETF on macOS); what names that call in the error.
func setKernelFilter(rc syscall.RawConn, eps []Endpoint, lh linkHeader, what string, set func(fd int, raw []bpf.RawInstruction) error) error {
	raw, err := ownTrafficFilter(eps, lh)
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = set(int(fd), raw) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("uplink capture: %s: %w", what, serr)
	}
	return nil
}
