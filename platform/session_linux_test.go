package platform

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLinuxSessionsAndConsoleUser(t *testing.T) {
	dir := t.TempDir()
	logind := filepath.Join(dir, "sessions")
	utmp := filepath.Join(dir, "utmp")
	src := &LinuxSessions{LogindDir: logind, Utmp: utmp}
	if s, err := src.Current(); err != nil || s != nil {
		t.Fatalf("neither logind nor utmp: %v %v", s, err)
	}
	os.WriteFile(utmp, utmpRecord(utmpUserProcess, 1, "tty1", "bob", ""), 0o644)
	s, err := src.Current()
	if u, ok := ConsoleUser(s); err != nil || !ok || u.User != "bob" {
		t.Fatalf("utmp: %+v %v", s, err)
	}
	// With logind running, its sessions win over utmp.
	os.Mkdir(logind, 0o755)
	if s, err = src.Current(); err != nil || len(s) != 0 {
		t.Fatalf("logind without sessions: %+v %v", s, err)
	}
	if _, ok := ConsoleUser(s); ok {
		t.Error("console user with nobody logged in")
	}
	os.WriteFile(filepath.Join(logind, "3"), []byte("UID=120\nUSER=gdm\nACTIVE=0\nCLASS=greeter\n"), 0o644)
	os.WriteFile(filepath.Join(logind, "5"), []byte("UID=1001\nUSER=bob\nACTIVE=0\nREMOTE=1\nCLASS=user\n"), 0o644)
	os.WriteFile(filepath.Join(logind, "4"), []byte("UID=1000\nUSER=alice\nACTIVE=1\nCLASS=user\nSEAT=seat0\n"), 0o644)
	os.WriteFile(filepath.Join(logind, ".#4tmp"), []byte("partial"), 0o644)
	s, err = src.Current()
	if err != nil || len(s) != 3 || s[0].ID != "3" || s[2].ID != "5" {
		t.Fatalf("logind: %+v %v", s, err)
	}
	if u, ok := ConsoleUser(s); !ok || u.User != "alice" || u.UID != "1000" {
		t.Errorf("console user = %+v %v", u, ok)
	}
	os.WriteFile(filepath.Join(logind, "6"), []byte("junk"), 0o644)
	if _, err := src.Current(); err == nil {
		t.Error("a malformed session file was accepted")
	}
}
