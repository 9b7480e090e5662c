//go:build !windows

package platformtest

import "path/filepath"

// ControlPath is a control channel path of a test's own under dir: a unix
// socket in dir (a named pipe on Windows, where dir only makes it unique).
func ControlPath(dir string) string { return filepath.Join(dir, "ctl.sock") }
