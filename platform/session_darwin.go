package platform

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// ConsoleSessions is the macOS session source: the owner of /dev/console is the
// user at the login window's foreground session (root while the login window
// itself shows), as SCDynamicStoreCopyConsoleUser reports. Remote (ssh)
// sessions are not listed.
type ConsoleSessions struct{ Console string }

// NewSessionSource returns the macOS session source.
func NewSessionSource() SessionSource { return &ConsoleSessions{Console: "/dev/console"} }

// Current lists the console session, if a user owns it.
func (c *ConsoleSessions) Current() ([]Session, error) {
	fi, err := os.Stat(c.Console)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil, nil
	}
	uid := strconv.FormatUint(uint64(st.Uid), 10)
	name := uid
	if u, err := user.LookupId(uid); err == nil {
		name = u.Username
	}
	return []Session{{ID: "console", User: name, UID: uid, Active: true, Class: "user", TTY: "console"}}, nil
}
