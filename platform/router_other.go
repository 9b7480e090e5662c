//go:build !linux && !windows && !darwin

package platform

import (
	"fmt"
	"runtime"

	"go.uber.org/zap"
)

// NewRouter reports that TUN addressing and routes are not implemented on this
// OS yet (Linux, Windows and macOS have routers).
func NewRouter(stateDir string, log *zap.Logger) (Router, error) {
	return nil, fmt.Errorf("TUN routing is not implemented on %s yet", runtime.GOOS)
}
