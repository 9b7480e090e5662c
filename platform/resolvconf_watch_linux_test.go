package platform

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

// watchedFile is a file under watch in a directory of its own, and the
// checks the watch has made.
type watchedFile struct {
	path   string
	w      *fileWatch
	checks atomic.Int64
	kick   chan struct{}
}

func newWatchedFile(t *testing.T, opts watchOpts) *watchedFile {
	t.Helper()
	f := &watchedFile{path: filepath.Join(t.TempDir(), "resolv.conf"), kick: make(chan struct{}, 100)}
	writeTestFile(t, f.path, "nameserver 100.64.0.53\n", 0o644)
	f.w = watchFile(f.path, opts, zaptest.NewLogger(t), func() {
		f.checks.Add(1)
		f.kick <- struct{}{}
	})
	return f
}

// waitCheck waits for a check, failing after 5 s.
func (f *watchedFile) waitCheck(t *testing.T, after string) {
	t.Helper()
	select {
	case <-f.kick:
	case <-time.After(5 * time.Second):
		t.Fatalf("no check within 5 s after %s", after)
	}
}

// quiet requires no check for d.
func (f *watchedFile) quiet(t *testing.T, d time.Duration, after string) {
	t.Helper()
	select {
	case <-f.kick:
		t.Fatalf("a check after %s", after)
	case <-time.After(d):
	}
}

// eventOnly are intervals under which every check comes from inotify.
var eventOnly = watchOpts{safety: time.Hour, poll: time.Hour, settle: 5 * time.Millisecond, gap: 5 * time.Millisecond}

// TestFileWatchEvents: the watch checks the file after each way another
// program rewrites it (in place, renamed over, removed and made again, made a
// symlink) and after nothing else in its directory, with no clock involved.
func TestFileWatchEvents(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newWatchedFile(t, eventOnly)
	defer f.w.stop()
	dir := filepath.Dir(f.path)

	f.quiet(t, 100*time.Millisecond, "the start")
	writeTestFile(t, f.path, "nameserver 192.0.2.1\n", 0o644) // in place: truncated and written
	f.waitCheck(t, "a rewrite in place")

	writeTestFile(t, filepath.Join(dir, "other"), "x", 0o644)
	f.quiet(t, 200*time.Millisecond, "another file of the directory changed")

	tmp := filepath.Join(dir, "nm.tmp")
	writeTestFile(t, tmp, "nameserver 192.0.2.2\n", 0o644)
	f.quiet(t, 100*time.Millisecond, "a temporary file was written beside it")
	if err := os.Rename(tmp, f.path); err != nil {
		t.Fatal(err)
	}
	f.waitCheck(t, "a rename over it")
	// The watch moved to the new inode: a write in place to it is seen.
	writeTestFile(t, f.path, "nameserver 192.0.2.3\n", 0o644)
	f.waitCheck(t, "a rewrite in place of the renamed file")

	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	f.waitCheck(t, "its removal")
	writeTestFile(t, f.path, "nameserver 192.0.2.4\n", 0o644)
	f.waitCheck(t, "its creation")

	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	f.waitCheck(t, "its removal")
	if err := os.Symlink("other", f.path); err != nil {
		t.Fatal(err)
	}
	f.waitCheck(t, "a symlink in its place")
}

// TestFileWatchCoalesces: a burst of writes makes one check, and a program
// rewriting the file without pause gets a check at most every gap.
func TestFileWatchCoalesces(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := watchOpts{safety: time.Hour, poll: time.Hour, settle: 100 * time.Millisecond, gap: 200 * time.Millisecond}
	f := newWatchedFile(t, opts)
	defer f.w.stop()

	for i := range 50 {
		writeTestFile(t, f.path, "nameserver 192.0.2."+string(rune('0'+i%10))+"\n", 0o644)
	}
	f.waitCheck(t, "a burst of 50 writes")
	f.quiet(t, 300*time.Millisecond, "the burst's check")
	if n := f.checks.Load(); n != 1 {
		t.Errorf("%d checks for a burst of 50 writes, want 1", n)
	}

	// A fight: a rewrite every 10 ms for 2 s.
	f.checks.Store(0)
	const fight = 2 * time.Second
	for end := time.Now().Add(fight); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		writeTestFile(t, f.path, "nameserver 192.0.2.9\n", 0o644)
	}
	n := f.checks.Load()
	if most := int64(fight/opts.gap) + 1; n > most || n < 2 {
		t.Errorf("%d checks in a %v fight, want 2 to %d (one per %v at most)", n, fight, most, opts.gap)
	}
}

// TestFileWatchPolls: without inotify the file is checked every poll
// interval, and with it every safety interval.
func TestFileWatchPolls(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, c := range []struct {
		name string
		opts watchOpts
	}{
		{"without inotify", watchOpts{safety: time.Hour, poll: 20 * time.Millisecond, settle: time.Millisecond, gap: time.Millisecond, noInotify: true}},
		{"with inotify", watchOpts{safety: 20 * time.Millisecond, poll: time.Hour, settle: time.Millisecond, gap: time.Millisecond}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newWatchedFile(t, c.opts)
			for range 3 {
				f.waitCheck(t, "nothing (the clock's check)")
			}
			f.w.stop()
			n := f.checks.Load()
			time.Sleep(60 * time.Millisecond)
			if f.checks.Load() != n {
				t.Error("a check after stop returned")
			}
		})
	}
}

// TestFileWatchBindMount: a file bind-mounted over the watched path (as ip
// netns exec and containers put resolv.conf) and rewritten in place through
// the mount's source is seen by the watch on its inode; no directory watch
// could see it.
func TestFileWatchBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	src := filepath.Join(t.TempDir(), "netns-resolv.conf") // another directory
	writeTestFile(t, path, "nameserver 192.0.2.99\n", 0o644)
	writeTestFile(t, src, "nameserver 192.0.2.1\n", 0o644)

	checks := make(chan struct{}, 10)
	started := make(chan *fileWatch)
	go func() {
		// The watch is made here, on the mount; its goroutines run
		// elsewhere, as the agent's would not.
		defer close(started)
		if !bindMountOnThread(t, src, path) {
			return
		}
		started <- watchFile(path, eventOnly, zaptest.NewLogger(t), func() { checks <- struct{}{} })
	}()
	w := <-started
	if w == nil {
		return
	}
	defer w.stop()
	writeTestFile(t, src, "nameserver 192.0.2.2\n", 0o644) // in place, through the source
	select {
	case <-checks:
	case <-time.After(5 * time.Second):
		t.Fatal("no check within 5 s of a rewrite through the mount's source")
	}
}
