package platform

import "errors"

// Cred is the identity of the process on the other end of a control connection.
type Cred struct {
	// UID is the user's ID; on Windows the relative ID (the last part) of
	// the user's SID, which only tells users apart for the per-user limits.
	UID int
	PID int
	// Admin is true for root (or, on Windows, SYSTEM or an elevated
	// member of Administrators).
	Admin bool
}

// ErrNotRunning is DialControl's error when no agent listens on the
// control channel (none there, or the connection refused).
var ErrNotRunning = errors.New("ztagent is not running")
