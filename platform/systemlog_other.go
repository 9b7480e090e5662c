//go:build !windows && !darwin

package platform

// OpenSystemLog returns no system log (nil, nil): on Linux under systemd
// the agent's standard error is the journal already.
func OpenSystemLog(string) (SystemLog, error) { return nil, nil }
