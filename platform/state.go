package platform

import (
	"os"
	"path/filepath"
	"runtime"
)

// DefaultStateDir is where the agent keeps its identity, cached config, stub
// assignments and journals.
func DefaultStateDir() string {
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("ProgramData"); d != "" {
			return filepath.Join(d, "ztagent")
		}
		return `C:\ProgramData\ztagent`
	case "darwin":
		return "/Library/Application Support/ztagent"
	default:
		return "/var/lib/ztagent"
	}
}

// DefaultSocketPath is the daemon's control socket (on Windows a named pipe).
func DefaultSocketPath() string {
	switch runtime.GOOS {
	case "windows":
		return DefaultPipeName
	case "darwin":
		return "/var/run/ztagent.sock"
	default:
		return "/run/ztagent/ztagent.sock"
	}
}

// DefaultL3ETUNName is the L3E tunnel's TUN device name the agent asks for.
func DefaultL3ETUNName() string {
	switch runtime.GOOS {
	case "darwin":
		return "utun"
	case "windows":
		return "ztagent-l3e"
	default:
		return "zt1"
	}
}

// DefaultTUNName is the TUN device name the agent asks for.
func DefaultTUNName() string {
	switch runtime.GOOS {
	case "darwin":
		return "utun"
	case "windows":
		return "ztagent"
	default:
		return "zt0"
	}
}
