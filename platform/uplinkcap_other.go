//go:build !linux && !darwin && !windows

package platform

import "fmt"

// OpenUplinkCapture is not done on this OS.
func OpenUplinkCapture() (UplinkCapture, error) {
	return nil, fmt.Errorf("%w", ErrUplinkCaptureUnsupported)
}
