package platform

import (
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/windows"
)

// WTSSessions is the Windows session source: the Terminal Services sessions,
// each with the user of its token. It needs the service's SYSTEM privilege
// (WTSQueryUserToken).
type WTSSessions struct{}

// NewSessionSource returns the Windows session source.
func NewSessionSource() SessionSource { return WTSSessions{} }

// Current lists the sessions that have a user.
func (WTSSessions) Current() ([]Session, error) {
	var infos *windows.WTS_SESSION_INFO
	var n uint32
	if err := windows.WTSEnumerateSessions(0, 0, 1, &infos, &n); err != nil {
		return nil, fmt.Errorf("sessions: WTSEnumerateSessions: %w", err)
	}
	defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(infos)))
	var out []Session
	for _, info := range unsafe.Slice(infos, n) {
		var tok windows.Token
		if windows.WTSQueryUserToken(info.SessionID, &tok) != nil {
			continue // no user in this session (services, the login screen)
		}
		s, err := tokenSession(tok, info)
		tok.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func tokenSession(tok windows.Token, info windows.WTS_SESSION_INFO) (Session, error) {
	tu, err := tok.GetTokenUser()
	if err != nil {
		return Session{}, fmt.Errorf("sessions: token user: %w", err)
	}
	account, domain, _, err := tu.User.Sid.LookupAccount("")
	if err != nil {
		return Session{}, fmt.Errorf("sessions: lookup account: %w", err)
	}
	station := windows.UTF16PtrToString(info.WindowStationName)
	return Session{ID: strconv.FormatUint(uint64(info.SessionID), 10), User: domain + `\` + account,
		UID: tu.User.Sid.String(), Active: info.State == windows.WTSActive,
		Remote: len(station) >= 4 && station[:4] == "RDP-", Class: "user", TTY: station}, nil
}
