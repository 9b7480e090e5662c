package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// LogindSessionsDir is where systemd-logind publishes its sessions for sd-login.
const LogindSessionsDir = "/run/systemd/sessions"

// LinuxSessions reads logind's session files when logind runs (what
// libsystemd's sd-login reads, so no D-Bus connection is needed), else utmp.
type LinuxSessions struct {
	LogindDir string // LogindSessionsDir
	Utmp      string // UtmpPath
}

// NewSessionSource returns the Linux session source.
func NewSessionSource() SessionSource {
	return &LinuxSessions{LogindDir: LogindSessionsDir, Utmp: UtmpPath}
}

// Current lists the sessions.
func (l *LinuxSessions) Current() ([]Session, error) {
	entries, err := os.ReadDir(l.LogindDir)
	switch {
	case err == nil:
		return l.logind(entries)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("sessions: %w", err)
	}
	data, err := os.ReadFile(l.Utmp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // neither logind nor utmp: nobody can log in
	}
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	s, err := ParseUtmp(data)
	if err != nil {
		return nil, fmt.Errorf("sessions: %s: %w", l.Utmp, err)
	}
	return s, nil
}

func (l *LinuxSessions) logind(entries []os.DirEntry) ([]Session, error) {
	var out []Session
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue // logind writes through hidden temporary files
		}
		data, err := os.ReadFile(filepath.Join(l.LogindDir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the session ended meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		s, ok, err := ParseLogindSession(e.Name(), data)
		if err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		if ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
