//go:build !linux && !darwin && !windows

package platform

import (
	"errors"
	"runtime"
)

// unsupportedSessions says plainly that this OS has no session source yet.
type unsupportedSessions struct{}

// NewSessionSource returns a source whose Current fails: pre-logon and
// per-user config need a session source this OS does not have yet.
func NewSessionSource() SessionSource { return unsupportedSessions{} }

func (unsupportedSessions) Current() ([]Session, error) {
	return nil, errors.New("sessions: not supported on " + runtime.GOOS)
}
