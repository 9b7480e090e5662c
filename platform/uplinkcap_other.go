//go:build !linux && !darwin && !windows

package platform

// OpenUplinkCapture is not done on this OS.
func OpenUplinkCapture() (UplinkCapture, error) {
	return nil, ErrUplinkCaptureUnsupported
}
