//go:build !linux && !windows && !darwin

package platform

import "go.uber.org/zap"

// NewNetMonitor returns ErrNetMonitorUnsupported: see its doc.
func NewNetMonitor(ignore []string, log *zap.Logger) (NetMonitor, error) {
	return nil, ErrNetMonitorUnsupported
}
