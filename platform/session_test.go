package platform

import (
	"bytes"
	"encoding/binary"
	"os/exec"
	"reflect"
	"testing"
)

// utmpRecord builds one glibc utmp record.
func utmpRecord(typ int16, pid int32, line, user, host string) []byte {
	r := make([]byte, utmpSize)
	binary.LittleEndian.PutUint16(r, uint16(typ))
	binary.LittleEndian.PutUint32(r[utmpOffPID:], uint32(pid))
	copy(r[utmpOffLine:utmpOffLine+utmpLineLen], line)
	copy(r[utmpOffUser:utmpOffUser+utmpUserLen], user)
	copy(r[utmpOffHost:utmpOffHost+utmpHostLen], host)
	return r
}

func TestParseUtmp(t *testing.T) {
	boot := utmpRecord(2, 0, "~", "reboot", "6.1.0")
	alice := utmpRecord(utmpUserProcess, 100, "pts/0", "alice", "10.1.2.3")
	bob := utmpRecord(utmpUserProcess, 200, "tty1", "bob", "")
	carol := utmpRecord(utmpUserProcess, 300, ":0", "carol", ":0")
	dead := utmpRecord(8, 400, "tty2", "", "")
	ctl := utmpRecord(utmpUserProcess, 500, "tty3", "ev\x01l", "")
	tests := []struct {
		name  string
		data  []byte
		want  []Session
		fails bool
	}{
		{name: "empty", data: nil},
		{name: "mixed", data: bytes.Join([][]byte{boot, alice, bob, dead, carol}, nil), want: []Session{
			{ID: "pts/0", User: "alice", Active: true, Remote: true, Class: "user", TTY: "pts/0", Leader: 100},
			{ID: "tty1", User: "bob", Active: true, Class: "user", TTY: "tty1", Leader: 200},
			{ID: ":0", User: "carol", Active: true, Class: "user", TTY: ":0", Leader: 300},
		}},
		{name: "partial trailing record", data: append(bytes.Clone(bob), alice[:100]...), want: []Session{
			{ID: "tty1", User: "bob", Active: true, Class: "user", TTY: "tty1", Leader: 200}}},
		{name: "control byte", data: ctl, fails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUtmp(tc.data)
			if (err != nil) != tc.fails || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

// TestParseUtmpFromUtmpdump checks the record layout against a utmp file
// written by util-linux's utmpdump, when it is installed.
func TestParseUtmpFromUtmpdump(t *testing.T) {
	bin, err := exec.LookPath("utmpdump")
	if err != nil {
		t.Skip("utmpdump (util-linux) not installed")
	}
	text := "[7] [12345] [ts/0] [alice   ] [pts/0       ] [10.1.2.3            ] [10.1.2.3       ] [2026-11-23T10:00:00,000000+00:00]\n" +
		"[8] [03333] [tty2] [        ] [tty2        ] [                    ] [0.0.0.0        ] [2026-11-23T08:00:00,000000+00:00]\n" +
		"[7] [02222] [tty1] [bob     ] [tty1        ] [                    ] [0.0.0.0        ] [2026-11-23T09:00:00,000000+00:00]\n"
	cmd := exec.Command(bin, "-r")
	cmd.Stdin = bytes.NewReader([]byte(text))
	data, err := cmd.Output()
	if err != nil || len(data) != 3*utmpSize {
		t.Fatalf("utmpdump -r: %v (%d bytes)", err, len(data))
	}
	got, err := ParseUtmp(data)
	want := []Session{
		{ID: "pts/0", User: "alice", Active: true, Remote: true, Class: "user", TTY: "pts/0", Leader: 12345},
		{ID: "tty1", User: "bob", Active: true, Class: "user", TTY: "tty1", Leader: 2222},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v %v, want %+v", got, err, want)
	}
}

func FuzzParseUtmp(f *testing.F) {
	f.Add(utmpRecord(utmpUserProcess, 1, "tty1", "bob", ""))
	f.Add(append(utmpRecord(utmpUserProcess, -1, "pts/0", "a", "h"), 1, 2, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseUtmp(data)
		if err != nil {
			return
		}
		if len(s) > len(data)/utmpSize {
			t.Fatalf("%d sessions from %d records", len(s), len(data)/utmpSize)
		}
		for _, x := range s {
			if x.User == "" || x.Leader < 0 {
				t.Fatalf("bad session %+v", x)
			}
		}
	})
}
