package platform

import (
	"fmt"
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

// DefaultSocketPath is the daemon's control socket.
func DefaultSocketPath() string {
	switch runtime.GOOS {
	case "windows":
		return filepath.Join(DefaultStateDir(), "ztagent.sock")
	case "darwin":
		return "/var/run/ztagent.sock"
	default:
		return "/run/ztagent/ztagent.sock"
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

// WriteFileAtomic replaces path with data so that a crash at any moment leaves
// either the old file or the new one, never a mix: temp file in the same
// directory, fsync, rename, fsync of the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: not every OS can fsync a directory
		d.Close()
	}
	return nil
}
