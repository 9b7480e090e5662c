package platform

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Session is one login session on this machine.
type Session struct {
	ID     string // logind session id, utmp line, Windows session id
	User   string // login name ("DOMAIN\user" on Windows)
	UID    string // numeric uid, or the Windows SID; "" when unknown
	Active bool   // in the foreground of its seat (the user at the keyboard)
	Remote bool   // ssh, RDP and the like
	Class  string // logind class ("user", "greeter", ...); "user" elsewhere
	TTY    string // terminal or seat, for display
	Leader int    // the session's leader process, 0 when unknown
}

// SessionSource reports who is logged in, so that the agent can run the
// pre-logon identity while nobody is and switch to the user's on login.
type SessionSource interface {
	// Current lists the sessions now, in a stable order.
	Current() ([]Session, error)
}

// ConsoleUser picks the local, active user session among sessions: the person
// at the machine whose identity the agent should use. ok is false when nobody
// is logged in locally (the login window, only remote sessions).
func ConsoleUser(sessions []Session) (Session, bool) {
	for _, s := range sessions {
		if s.Active && !s.Remote && s.Class == "user" && s.User != "" {
			return s, true
		}
	}
	return Session{}, false
}

// utmp (Linux glibc, every 64-bit architecture Go supports there): fixed
// records of utmpSize bytes, little endian on amd64, arm64, riscv64, loong64
// and ppc64le.
const (
	utmpSize        = 384
	utmpUserProcess = 7
	utmpOffPID      = 4
	utmpOffLine     = 8
	utmpOffUser     = 44
	utmpOffHost     = 76
	utmpLineLen     = 32
	utmpUserLen     = 32
	utmpHostLen     = 256
)

// UtmpPath is where Linux keeps the current logins.
const UtmpPath = "/var/run/utmp"

// ParseUtmp returns the user sessions (USER_PROCESS records) of a utmp file. A
// trailing partial record (a write in progress) is ignored; a record whose
// strings are not text is an error naming it.
func ParseUtmp(data []byte) ([]Session, error) {
	var out []Session
	for i := 0; i+utmpSize <= len(data); i += utmpSize {
		r := data[i : i+utmpSize]
		if int16(binary.LittleEndian.Uint16(r)) != utmpUserProcess {
			continue
		}
		line, err1 := cString(r[utmpOffLine : utmpOffLine+utmpLineLen])
		user, err2 := cString(r[utmpOffUser : utmpOffUser+utmpUserLen])
		host, err3 := cString(r[utmpOffHost : utmpOffHost+utmpHostLen])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("utmp record %d: not text", i/utmpSize)
		}
		if user == "" {
			continue
		}
		pid := int(int32(binary.LittleEndian.Uint32(r[utmpOffPID:])))
		// A local login is on a console or a local X display (":0"); any other
		// host is where a remote session came from.
		remote := host != "" && !strings.HasPrefix(host, ":")
		out = append(out, Session{ID: line, User: user, Active: true, Remote: remote,
			Class: "user", TTY: line, Leader: max(pid, 0)})
	}
	return out, nil
}

// cString reads a NUL-padded C string that must be printable text.
func cString(b []byte) (string, error) {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("control byte %#x", c)
		}
	}
	return strings.ToValidUTF8(string(b), "?"), nil
}
