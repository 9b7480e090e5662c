//go:build linux || darwin

package platform

import (
	"os"
	"syscall"
	"testing"
)

// TestCountOpenFiles: the count follows descriptors opened and closed, and
// the accepted-descriptor bound never exceeds it.
func TestCountOpenFiles(t *testing.T) {
	before, err := countOpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	for range 100 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	during, err := countOpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	if d := during - before; d < 100 || d > 105 { // the runtime may open a few of its own
		t.Fatalf("100 files opened: count went from %d to %d", before, during)
	}
	if last := int(files[len(files)-1].Fd()); last+1 > during+5 {
		t.Fatalf("descriptor %d is open, but only %d are counted", last, during)
	}
	for _, f := range files {
		f.Close()
	}
}

// TestRaiseFileLimit: after it, the soft limit is the hard one (the Go
// runtime leaves it one below, which counts as raised).
func TestRaiseFileLimit(t *testing.T) {
	soft, hard, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	if r.Cur != soft || r.Max != hard || soft+1 < maxFileLimit(hard) {
		t.Fatalf("limit now %d/%d; RaiseFileLimit said %d/%d", r.Cur, r.Max, soft, hard)
	}
	if fileLimit() != int(soft) {
		t.Fatalf("fileLimit %d, want %d", fileLimit(), soft)
	}
}
