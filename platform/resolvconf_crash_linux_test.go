package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// longAgentCfg makes a longer file than agentCfg, so that the second Set of
// a run writes more bytes than the first.
var longAgentCfg = DNSConfig{
	Servers: []netip.Addr{netip.MustParseAddr("100.64.0.53"), netip.MustParseAddr("fd7a:115c:a1e0::53")},
	Search:  []string{"corp.example", "apps.corp.example", "eng.corp.example"},
}

// longConf is an original longer than any file the agent writes, so that a
// write over it that is not yet truncated leaves a tail of it behind.
var longConf = origConf + "\n" + strings.Repeat("# a long comment the administrator left here\n", 12) + "nameserver 192.0.2.54\n"

// crashOriginals are the originals the crash tests start from: in place, the
// file is a mount point, so a regular file.
var crashOriginals = []struct {
	name    string
	inPlace bool
	setup   func(t *testing.T, dir string) string
}{
	{"in place, short original", true, regularOriginal("nameserver 10.0.0.1\n", 0o644)},
	{"in place, original longer than the agent's", true, regularOriginal(longConf, 0o640)},
	{"in place, empty original", true, regularOriginal("", 0o644)},
	{"rename, " + setups[0].name, false, setups[0].setup},
	{"rename, " + setups[1].name, false, setups[1].setup},
	{"rename, " + setups[3].name, false, setups[3].setup},
}

func regularOriginal(content string, perm fs.FileMode) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "resolv.conf")
		writeTestFile(t, p, content, perm)
		return p
	}
}

// crashDir is a temporary directory for the crash tests, on tmpfs when there
// is one: they sync files thousands of times, which costs nothing there.
func crashDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "ztagent-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// runLifecycle is one run of the agent as far as resolv.conf goes: start
// (and with it the repair of an earlier run), two Sets writing files of
// different lengths, and a clean stop.
func runLifecycle(t *testing.T, path, state string, fsys resolvFS) {
	t.Helper()
	r, err := newResolvConfDNS(path, state, zap.NewNop(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []DNSConfig{agentCfg, longAgentCfg} {
		if err := r.Set(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
}

// checkBackToOriginal: resolv.conf is exactly orig, and neither a journal nor
// a temp file is left.
func checkBackToOriginal(t *testing.T, path, state string, orig fsState, what string) {
	t.Helper()
	if got := readState(t, path); !got.equal(orig) {
		t.Fatalf("%s: resolv.conf is\n%+v\nwant the original\n%+v", what, got, orig)
	}
	if _, err := os.Lstat(filepath.Join(state, resolvConfJournalName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: journal left: %v", what, err)
	}
	if _, err := os.Lstat(tempName(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: temp file left: %v", what, err)
	}
}

// newFaultFS is a faultFS for path as the crash tests need it: busy when
// path is written in place.
func newFaultFS(path string, inPlace bool) *faultFS {
	f := &faultFS{}
	if inPlace {
		f.busy = path
	}
	return f
}

// TestResolvConfRepairsInterruptedWrite leaves resolv.conf, after a Set over
// a bind mount, in each state a kill during an in-place write can leave it
// in, and checks that the next start puts the original back.
func TestResolvConfRepairsInterruptedWrite(t *testing.T) {
	tests := []struct {
		name  string
		orig  string
		state func(agents []byte) string
	}{
		{"emptied (truncated before the write)", origConf, func([]byte) string { return "" }},
		{"agent's header cut short", origConf, func(a []byte) string { return string(a[:5]) }},
		{"agent's file cut short", origConf, func(a []byte) string { return string(a[:len(a)/2]) }},
		{"agent's file over a longer original, not yet truncated", longConf,
			func(a []byte) string { return string(a) + longConf[len(a):] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := crashDir(t)
			path := filepath.Join(dir, "resolv.conf")
			state := filepath.Join(dir, "state")
			writeTestFile(t, path, tc.orig, 0o640)
			orig := readState(t, path)
			r, err := newResolvConfDNS(path, state, zaptest.NewLogger(t), newFaultFS(path, true))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Set(agentCfg); err != nil {
				t.Fatal(err)
			}
			agents, _ := os.ReadFile(path)
			// The kill: r is gone, the file as the interrupted write left it.
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(tc.state(agents)); err != nil {
				t.Fatal(err)
			}
			f.Close()

			if _, err := newResolvConfDNS(path, state, zaptest.NewLogger(t), newFaultFS(path, true)); err != nil {
				t.Fatal(err)
			}
			checkBackToOriginal(t, path, state, orig, "after the repair")
			runLifecycle(t, path, state, newFaultFS(path, true))
			checkBackToOriginal(t, path, state, orig, "after the next run")
		})
	}
}

// TestResolvConfKilledAtEveryStep kills a run at each step that changes the
// disk in turn, a write cut short at several lengths, and checks that the
// next start restores the original and the run after it works.
func TestResolvConfKilledAtEveryStep(t *testing.T) {
	for _, tc := range crashOriginals {
		t.Run(tc.name, func(t *testing.T) {
			steps := countSteps(t, tc.setup, tc.inPlace)
			for kill := 1; kill <= steps; kill++ {
				for _, cut := range []func(int) int{
					func(int) int { return 0 }, func(int) int { return 1 }, func(n int) int { return n / 2 },
					func(n int) int { return n - 1 },
				} {
					dir := crashDir(t)
					path := tc.setup(t, dir)
					state := filepath.Join(dir, "state")
					orig := readState(t, path)
					f := newFaultFS(path, tc.inPlace)
					f.killAt, f.cut = kill, cut
					if !killed(func() { runLifecycle(t, path, state, f) }) {
						t.Fatalf("step %d of %d: not killed", kill, steps)
					}
					what := fmt.Sprintf("killed at step %d of %d (%s), cut at %d of 100 bytes",
						kill, steps, f.lastOp, cut(100))
					if _, err := newResolvConfDNS(path, state, zap.NewNop(), newFaultFS(path, tc.inPlace)); err != nil {
						t.Fatalf("%s: next start: %v", what, err)
					}
					checkBackToOriginal(t, path, state, orig, what+": after the repair")
					runLifecycle(t, path, state, newFaultFS(path, tc.inPlace))
					checkBackToOriginal(t, path, state, orig, what+": after the next run")
					if f.lastOp != "write" {
						break // the cut only matters for a write
					}
				}
			}
		})
	}
}

// countSteps is how many steps a whole run takes on a fresh original.
func countSteps(t *testing.T, setup func(*testing.T, string) string, inPlace bool) int {
	t.Helper()
	dir := crashDir(t)
	path := setup(t, dir)
	f := newFaultFS(path, inPlace)
	runLifecycle(t, path, filepath.Join(dir, "state"), f)
	return f.steps
}

// TestResolvConfKilledAtRandom: many rounds of a run killed at a random step
// (a write cut at a random length), then up to two starts killed likewise
// during their repair or their own run, then a start that is left to finish:
// the original bytes, mode and symlink must come back every time.
func TestResolvConfKilledAtRandom(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, seed>>1))
	steps := map[int]int{}
	for i, tc := range crashOriginals {
		steps[i] = countSteps(t, tc.setup, tc.inPlace)
	}
	for round := range rounds {
		i := rnd.IntN(len(crashOriginals))
		tc := crashOriginals[i]
		dir := crashDir(t)
		path := tc.setup(t, dir)
		state := filepath.Join(dir, "state")
		orig := readState(t, path)
		var kills []string
		for k := range 1 + rnd.IntN(3) {
			f := newFaultFS(path, tc.inPlace)
			f.rnd = rnd
			f.killAt = 1 + rnd.IntN(steps[i]+4) // sometimes past the end: a run that completes
			if killed(func() { runLifecycle(t, path, state, f) }) {
				kills = append(kills, fmt.Sprintf("run %d killed at step %d (%s)", k, f.killAt, f.lastOp))
			}
		}
		what := fmt.Sprintf("round %d (seed %d), %s: %s", round, seed, tc.name, strings.Join(kills, ", "))
		if _, err := newResolvConfDNS(path, state, zap.NewNop(), newFaultFS(path, tc.inPlace)); err != nil {
			t.Fatalf("%s: next start: %v", what, err)
		}
		checkBackToOriginal(t, path, state, orig, what+": after the repair")
		runLifecycle(t, path, state, newFaultFS(path, tc.inPlace))
		checkBackToOriginal(t, path, state, orig, what+": after the next run")
	}
}

// TestResolvConfFailedReadKeepsState fails the configurator's reads of
// resolv.conf (the agent out of file descriptors) at each point it reads,
// and checks that it neither forgets that it manages the file nor loses the
// original: once reads work again, Restore (or the next start) puts the
// original back.
func TestResolvConfFailedReadKeepsState(t *testing.T) {
	tests := []struct {
		name string
		ops  []string // failed operations on resolv.conf
		// during runs with reads failing; it may return an error, never
		// lose the original.
		during func(r *resolvConfDNS) error
		// crash: the configurator is dropped after during, not restored.
		crash bool
	}{
		{"watcher, read fails", []string{"read"}, func(r *resolvConfDNS) error { r.reapply(); return nil }, false},
		{"watcher, lstat fails", []string{"lstat"}, func(r *resolvConfDNS) error { r.reapply(); return nil }, false},
		{"Set again, read fails", []string{"read"}, func(r *resolvConfDNS) error { return r.Set(longAgentCfg) }, false},
		{"Upstreams, read fails", []string{"read"}, func(r *resolvConfDNS) error {
			up, err := r.Upstreams()
			for _, a := range up {
				if a.Addr() == agentCfg.Servers[0] {
					return fmt.Errorf("upstreams %v include the agent", up)
				}
			}
			return err
		}, false},
		{"Restore, read fails", []string{"read"}, func(r *resolvConfDNS) error { return r.Restore() }, false},
		{"Restore, lstat fails", []string{"lstat"}, func(r *resolvConfDNS) error { return r.Restore() }, false},
		{"repair at the next start, read fails", []string{"read"}, func(r *resolvConfDNS) error {
			_, err := newResolvConfDNS(r.path, filepath.Dir(r.journal.path), zap.NewNop(), r.fsys)
			return err
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := crashDir(t)
			path := filepath.Join(dir, "resolv.conf")
			state := filepath.Join(dir, "state")
			writeTestFile(t, path, origConf, 0o640)
			orig := readState(t, path)
			f := &faultFS{}
			r, err := newResolvConfDNS(path, state, zaptest.NewLogger(t), f)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Set(agentCfg); err != nil {
				t.Fatal(err)
			}
			f.fail = func(op, name string) error {
				for _, o := range tc.ops {
					if op == o && name == path {
						return syscall.EMFILE
					}
				}
				return nil
			}
			if err := tc.during(r); err != nil {
				t.Logf("with reads failing: %v", err)
			}
			f.fail = nil
			if !tc.crash {
				if err := r.Restore(); err != nil {
					t.Fatalf("Restore once reads work again: %v", err)
				}
			} else if _, err := newResolvConfDNS(path, state, zaptest.NewLogger(t), f); err != nil {
				t.Fatalf("start once reads work again: %v", err)
			}
			checkBackToOriginal(t, path, state, orig, "once reads work again")
		})
	}
}
