//go:build !linux

package platform

import (
	"fmt"
	"runtime"

	"go.uber.org/zap"
)

// NewRouter reports that TUN addressing and routes are not implemented on this
// OS yet (macOS: route(8)/PF_ROUTE, Windows: winipcfg, tracked in an issue).
func NewRouter(stateDir string, log *zap.Logger) (Router, error) {
	return nil, fmt.Errorf("TUN routing is not implemented on %s yet", runtime.GOOS)
}
