package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/godbus/dbus/v5"
)

// logind's D-Bus names (org.freedesktop.login1(5)).
const (
	logindBusName      = "org.freedesktop.login1"
	logindPath         = dbus.ObjectPath("/org/freedesktop/login1")
	logindManager      = "org.freedesktop.login1.Manager"
	logindSessionIface = "org.freedesktop.login1.Session"
)

// LinuxSessions asks systemd-logind over the system D-Bus; where there is no
// logind (no system bus, or nobody owns org.freedesktop.login1: containers,
// non-systemd distributions) it reads utmp.
type LinuxSessions struct {
	// Dial connects to the bus where logind answers; each Current makes and
	// closes its own connection, so the source owns no goroutine between calls.
	Dial func() (*dbus.Conn, error)
	Utmp string // UtmpPath
}

// NewSessionSource returns the Linux session source.
func NewSessionSource() SessionSource {
	return &LinuxSessions{Dial: func() (*dbus.Conn, error) { return dbus.ConnectSystemBus() }, Utmp: UtmpPath}
}

// Current lists the sessions, sorted by id.
func (l *LinuxSessions) Current() ([]Session, error) {
	conn, err := l.Dial()
	if err != nil {
		if isNoBus(err) {
			return l.utmp()
		}
		return nil, fmt.Errorf("sessions: system bus: %w", err)
	}
	defer conn.Close()
	out, err := logindSessions(conn)
	var de dbus.Error
	if errors.As(err, &de) && de.Name == "org.freedesktop.DBus.Error.ServiceUnknown" {
		return l.utmp()
	}
	if err != nil {
		return nil, fmt.Errorf("sessions: logind: %w", err)
	}
	return out, nil
}

// isNoBus recognises a system bus socket that does not exist or refuses.
func isNoBus(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

func (l *LinuxSessions) utmp() ([]Session, error) {
	data, err := os.ReadFile(l.Utmp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // neither logind nor utmp: nobody is logged in
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

// logindEntry is one element of ListSessions' a(susso).
type logindEntry struct {
	ID   string
	UID  uint32
	User string
	Seat string
	Path dbus.ObjectPath
}

func logindSessions(conn *dbus.Conn) ([]Session, error) {
	var entries []logindEntry
	if err := conn.Object(logindBusName, logindPath).Call(logindManager+".ListSessions", 0).Store(&entries); err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(entries))
	for _, e := range entries {
		var props map[string]dbus.Variant
		err := conn.Object(logindBusName, e.Path).
			Call("org.freedesktop.DBus.Properties.GetAll", 0, logindSessionIface).Store(&props)
		var de dbus.Error
		if errors.As(err, &de) && de.Name == "org.freedesktop.DBus.Error.UnknownObject" {
			continue // the session ended between the two calls
		}
		if err != nil {
			return nil, fmt.Errorf("session %s: %w", e.ID, err)
		}
		if s, ok := logindSession(e, props); ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// logindSession is the pure half: one ListSessions entry and its properties.
// Closing sessions (the user logged out, processes linger) are left out.
func logindSession(e logindEntry, props map[string]dbus.Variant) (Session, bool) {
	str := func(name string) string { v, _ := props[name].Value().(string); return v }
	flag := func(name string) bool { v, _ := props[name].Value().(bool); return v }
	if str("State") == "closing" || e.User == "" {
		return Session{}, false
	}
	leader, _ := props["Leader"].Value().(uint32)
	tty := str("TTY")
	if tty == "" {
		tty = e.Seat
	}
	class := str("Class")
	if class == "" {
		class = "user"
	}
	return Session{ID: e.ID, User: e.User, UID: fmt.Sprint(e.UID), Active: flag("Active"),
		Remote: flag("Remote"), Class: class, TTY: tty, Leader: int(leader)}, true
}
