package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStubSaveRetried: a save of the stub assignments that fails (here the
// file's place is taken by a directory) is tried again soon, without waiting
// for the next change or the periodic save.
func TestStubSaveRetried(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	p := partsOf(t, a.Agent)
	file := filepath.Join(p.who.dir, stubsFile)
	os.Remove(file)
	if err := os.MkdirAll(filepath.Join(file, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := p.stubs.v4.Assign("web.corp.test", time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the save after the change has failed
	if err := os.RemoveAll(file); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(file)
		if err == nil && strings.Contains(string(b), "web.corp.test") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a failed save was not retried: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
