//go:build !linux && !darwin

package platform

import "fmt"

// OpenUplinkCapture is not done on this OS. On Windows, the one capture the
// system has built in is pktmon, whose filters and session are global (an
// administrator's own pktmon session would be stopped or changed by ours),
// and which writes an ETL file that becomes pcapng only after the capture
// stops (no packet counts, no size cap of ours while it runs): it would not
// be the capture ztdiag -c is, so it is refused.
func OpenUplinkCapture() (UplinkCapture, error) {
	return nil, fmt.Errorf("%w: use pktmon (pktmon filter add -i ADDRESS; pktmon start --capture) for now", ErrUplinkCaptureUnsupported)
}
