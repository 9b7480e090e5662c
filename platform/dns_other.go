//go:build !linux && !darwin && !windows

package platform

import (
	"fmt"
	"runtime"

	"go.uber.org/zap"
)

// NewDNSConfigurator is not implemented on this OS (Linux, macOS and Windows
// have theirs). It returns an error rather than a configurator that silently
// does nothing, so the agent reports that private names cannot be resolved.
func NewDNSConfigurator(stateDir string, log *zap.Logger) (DNSConfigurator, error) {
	return nil, fmt.Errorf("configuring the OS resolver is not supported yet on %s", runtime.GOOS)
}
