package platform

import (
	"os"
	"path/filepath"
	"runtime"
)

// DefaultLogDir is where the agent writes its log files: the OS's place for
// a system service's logs. ZTAGENT_LOG_DIR, when set, overrides it (the lab
// sets it so that an agent it runs never writes in the host's /var/log).
func DefaultLogDir() string {
	if d := os.Getenv("ZTAGENT_LOG_DIR"); d != "" {
		return d
	}
	return logDir(runtime.GOOS, os.Getenv)
}

func logDir(goos string, getenv func(string) string) string {
	switch goos {
	case "windows":
		if d := getenv("ProgramData"); d != "" {
			return filepath.Join(d, "ztagent", "logs")
		}
		return `C:\ProgramData\ztagent\logs`
	case "darwin":
		return "/Library/Logs/ztagent"
	default:
		return "/var/log/ztagent"
	}
}
