package platform

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
	"go.uber.org/goleak"
)

// fakeLogind is org.freedesktop.login1's Manager and session objects.
type fakeLogind struct {
	mu       sync.Mutex
	sessions []logindEntry
	props    map[dbus.ObjectPath]map[string]dbus.Variant
}

func (f *fakeLogind) ListSessions() ([]logindEntry, *dbus.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions, nil
}

type fakeSessionProps struct {
	f    *fakeLogind
	path dbus.ObjectPath
}

func (p fakeSessionProps) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	if iface != logindSessionIface {
		return nil, dbus.MakeFailedError(errors.New("no interface " + iface))
	}
	return p.f.props[p.path], nil
}

func (f *fakeLogind) add(id string, uid uint32, user, seat string, props map[string]any) {
	path := dbus.ObjectPath("/org/freedesktop/login1/session/_3" + id)
	f.sessions = append(f.sessions, logindEntry{ID: id, UID: uid, User: user, Seat: seat, Path: path})
	vs := map[string]dbus.Variant{}
	for k, v := range props {
		vs[k] = dbus.MakeVariant(v)
	}
	f.props[path] = vs
}

func serveFakeLogind(t *testing.T, addr string, f *fakeLogind) {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Export(f, logindPath, logindManager); err != nil {
		t.Fatal(err)
	}
	for _, e := range f.sessions {
		if err := conn.Export(fakeSessionProps{f: f, path: e.Path}, e.Path, "org.freedesktop.DBus.Properties"); err != nil {
			t.Fatal(err)
		}
	}
	if reply, err := conn.RequestName(logindBusName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", reply, err)
	}
}

// TestLogindSessions asks a fake logind on a private dbus-daemon.
func TestLogindSessions(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	addr := startTestBus(t)
	utmp := filepath.Join(t.TempDir(), "utmp")
	os.WriteFile(utmp, utmpRecord(utmpUserProcess, 1, "tty1", "utmp-user", ""), 0o644)
	src := &LinuxSessions{Dial: func() (*dbus.Conn, error) { return dbus.Connect(addr) }, Utmp: utmp}

	// A bus without logind: utmp answers.
	s, err := src.Current()
	if err != nil || len(s) != 1 || s[0].User != "utmp-user" {
		t.Fatalf("without logind: %+v %v", s, err)
	}

	f := &fakeLogind{props: map[dbus.ObjectPath]map[string]dbus.Variant{}}
	f.add("5", 1001, "bob", "", map[string]any{"Active": false, "Remote": true, "Class": "user", "TTY": "pts/1", "State": "online", "Leader": uint32(900)})
	f.add("3", 120, "gdm", "seat0", map[string]any{"Active": false, "Remote": false, "Class": "greeter", "TTY": "", "State": "online", "Leader": uint32(700)})
	f.add("4", 1000, "alice", "seat0", map[string]any{"Active": true, "Remote": false, "Class": "user", "TTY": "", "State": "active", "Leader": uint32(800)})
	f.add("6", 1002, "carol", "seat0", map[string]any{"Active": false, "Class": "user", "State": "closing"})
	serveFakeLogind(t, addr, f)

	s, err = src.Current()
	want := []Session{
		{ID: "3", User: "gdm", UID: "120", Class: "greeter", TTY: "seat0", Leader: 700},
		{ID: "4", User: "alice", UID: "1000", Active: true, Class: "user", TTY: "seat0", Leader: 800},
		{ID: "5", User: "bob", UID: "1001", Remote: true, Class: "user", TTY: "pts/1", Leader: 900},
	}
	if err != nil || !reflect.DeepEqual(s, want) {
		t.Fatalf("logind: %+v %v\nwant %+v", s, err, want)
	}
	if u, ok := ConsoleUser(s); !ok || u.User != "alice" {
		t.Errorf("console user = %+v %v", u, ok)
	}
}

func TestLinuxSessionsWithoutBus(t *testing.T) {
	dir := t.TempDir()
	utmp := filepath.Join(dir, "utmp")
	src := &LinuxSessions{Utmp: utmp, Dial: func() (*dbus.Conn, error) {
		return dbus.Connect("unix:path=" + filepath.Join(dir, "no-bus"))
	}}
	if s, err := src.Current(); err != nil || s != nil {
		t.Fatalf("neither logind nor utmp: %v %v", s, err)
	}
	os.WriteFile(utmp, utmpRecord(utmpUserProcess, 1, "tty1", "bob", ""), 0o644)
	s, err := src.Current()
	if u, ok := ConsoleUser(s); err != nil || !ok || u.User != "bob" {
		t.Fatalf("utmp: %+v %v", s, err)
	}
	// Any other bus failure is reported, not papered over with utmp.
	src.Dial = func() (*dbus.Conn, error) { return nil, syscall.EACCES }
	if _, err := src.Current(); err == nil {
		t.Error("a refused bus was not reported")
	}
	// This machine, whatever it has: an answer or an error, never a panic.
	if s, err := NewSessionSource().Current(); err != nil {
		t.Logf("this machine: %v", err)
	} else {
		t.Logf("this machine: %d sessions", len(s))
	}
}
