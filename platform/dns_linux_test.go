package platform

import (
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

var agentCfg = DNSConfig{Servers: []netip.Addr{netip.MustParseAddr("100.64.0.53")}, Search: []string{"corp.example"}}

const origConf = "# my resolver\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nsearch home.example\noptions edns0 trust-ad" // no final newline

// fsState is everything Restore must put back.
type fsState struct {
	exists  bool
	symlink string
	perm    fs.FileMode
	content []byte
}

func readState(t *testing.T, path string) fsState {
	t.Helper()
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fsState{}
	}
	if err != nil {
		t.Fatal(err)
	}
	s := fsState{exists: true, perm: fi.Mode().Perm()}
	if fi.Mode()&fs.ModeSymlink != 0 {
		s.symlink, _ = os.Readlink(path)
		s.perm = 0
		return s
	}
	s.content, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s fsState) equal(o fsState) bool {
	return s.exists == o.exists && s.symlink == o.symlink && s.perm == o.perm && bytes.Equal(s.content, o.content)
}

// setups prepare the original /etc/resolv.conf in dir and return its path.
var setups = []struct {
	name      string
	setup     func(t *testing.T, dir string) string
	upstreams []string
}{
	{"regular file, odd mode", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "resolv.conf")
		writeTestFile(t, p, origConf, 0o640)
		return p
	}, []string{"192.0.2.53:53", "[fe80::1%eth0]:53"}},
	{"symlink to resolved stub", func(t *testing.T, dir string) string {
		target := filepath.Join(dir, "run", "stub-resolv.conf")
		os.MkdirAll(filepath.Dir(target), 0o755)
		writeTestFile(t, target, "# managed by man:systemd-resolved(8)\nnameserver 127.0.0.53\n", 0o644)
		p := filepath.Join(dir, "resolv.conf")
		if err := os.Symlink("run/stub-resolv.conf", p); err != nil {
			t.Fatal(err)
		}
		return p
	}, []string{"127.0.0.53:53"}},
	{"dangling symlink", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "resolv.conf")
		if err := os.Symlink("/nonexistent/resolv.conf", p); err != nil {
			t.Fatal(err)
		}
		return p
	}, nil},
	{"no file", func(t *testing.T, dir string) string {
		return filepath.Join(dir, "resolv.conf")
	}, nil},
}

// renameFS is the real file system with rename replaced.
type renameFS struct {
	osFS
	rename func(oldpath, newpath string) error
}

func (f renameFS) Rename(oldpath, newpath string) error { return f.rename(oldpath, newpath) }

func writeTestFile(t *testing.T, path, content string, perm fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestResolvConfSetRestore(t *testing.T) {
	for _, tc := range setups {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)
			orig := readState(t, path)
			r, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), osFS{})
			if err != nil {
				t.Fatal(err)
			}
			checkUpstreams(t, r, tc.upstreams)
			for range 2 { // a second Set must not journal the agent's own file
				if err := r.Set(agentCfg); err != nil {
					t.Fatal(err)
				}
			}
			set := readState(t, path)
			if set.symlink != "" || !strings.HasPrefix(string(set.content), resolvConfMarker) {
				t.Fatalf("after Set: %+v, want a regular file written by ztagent", set)
			}
			rc := parseResolvConf(set.content)
			if !slices.Equal(rc.Nameservers, agentCfg.Servers) || rc.Search[0] != "corp.example" {
				t.Errorf("after Set: nameservers %v search %v", rc.Nameservers, rc.Search)
			}
			checkUpstreams(t, r, tc.upstreams) // still the original's
			if err := r.Restore(); err != nil {
				t.Fatal(err)
			}
			if got := readState(t, path); !got.equal(orig) {
				t.Fatalf("after Restore:\n%+v\nwant\n%+v", got, orig)
			}
			if _, err := os.Stat(r.journal.path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("journal left after Restore: %v", err)
			}
			if err := r.Restore(); err != nil {
				t.Errorf("second Restore: %v", err)
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
			if len(leftovers) != 0 {
				t.Errorf("temp files left: %v", leftovers)
			}
		})
	}
}

// TestResolvConfCrashRepair drops a configurator after Set, as a crash would,
// and checks that the next one repairs the file before doing anything else.
func TestResolvConfCrashRepair(t *testing.T) {
	for _, tc := range setups {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)
			state := filepath.Join(dir, "state")
			orig := readState(t, path)
			r, err := newResolvConfDNS(path, state, zaptest.NewLogger(t), osFS{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Set(agentCfg); err != nil {
				t.Fatal(err)
			}
			// Crash: r is dropped without Restore. A temp file was also left.
			writeTestFile(t, tempName(path), "partial", 0o644)

			r2, err := newResolvConfDNS(path, state, zaptest.NewLogger(t), osFS{})
			if err != nil {
				t.Fatal(err)
			}
			if got := readState(t, path); !got.equal(orig) {
				t.Fatalf("after repair:\n%+v\nwant\n%+v", got, orig)
			}
			if _, err := os.Lstat(tempName(path)); !errors.Is(err, fs.ErrNotExist) {
				t.Error("stale temp file not removed")
			}
			checkUpstreams(t, r2, tc.upstreams)
			// And the repaired configurator works normally.
			if err := r2.Set(agentCfg); err != nil {
				t.Fatal(err)
			}
			if err := r2.Restore(); err != nil {
				t.Fatal(err)
			}
			if got := readState(t, path); !got.equal(orig) {
				t.Fatalf("after second run:\n%+v\nwant\n%+v", got, orig)
			}
		})
	}
}

// TestResolvConfMountPoint makes rename fail as it does over a bind mount
// (ip netns exec, Docker): the file must be rewritten in place, same inode.
func TestResolvConfMountPoint(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EBUSY, syscall.EXDEV} {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "resolv.conf")
			writeTestFile(t, path, origConf, 0o644)
			before, _ := os.Stat(path)
			busy := func(oldpath, newpath string) error {
				if newpath == path {
					return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errno}
				}
				return os.Rename(oldpath, newpath)
			}
			r, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), renameFS{rename: busy})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Set(agentCfg); err != nil {
				t.Fatal(err)
			}
			after, _ := os.Stat(path)
			if !os.SameFile(before, after) {
				t.Error("file replaced, not written in place")
			}
			if b, _ := os.ReadFile(path); !bytes.HasPrefix(b, []byte(resolvConfMarker)) {
				t.Errorf("not written: %q", b)
			}
			if err := r.Restore(); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != origConf {
				t.Errorf("restored %q, want the original", b)
			}
		})
	}
}

func TestResolvConfRenameOtherErrorFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	writeTestFile(t, path, origConf, 0o644)
	fail := func(oldpath, newpath string) error {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EROFS}
	}
	r, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), renameFS{rename: fail})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(agentCfg); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Set on a read-only file system: %v, want an error naming %s", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != origConf {
		t.Errorf("file changed: %q", b)
	}
}

// TestResolvConfOrphan: a file written by ztagent with no journal (state
// directory lost) cannot be restored; construction says so rather than
// treating the agent's own address as the upstream.
func TestResolvConfOrphan(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	writeTestFile(t, path, string(renderResolvConf(resolvConf{}, agentCfg, "")), 0o644)
	_, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), osFS{})
	if err == nil || !strings.Contains(err.Error(), "no record of the original") {
		t.Fatalf("err %v", err)
	}
}

func TestResolvConfCorruptJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	writeTestFile(t, path, origConf, 0o644)
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	writeTestFile(t, filepath.Join(state, resolvConfJournalName), "{not json", 0o600)
	_, err := newResolvConfDNS(path, state, zaptest.NewLogger(t), osFS{})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("err %v, want one saying the journal is corrupt", err)
	}
}

func checkUpstreams(t *testing.T, r *resolvConfDNS, want []string) {
	t.Helper()
	got, err := r.Upstreams()
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, a := range got {
		s = append(s, a.String())
	}
	if !slices.Equal(s, want) {
		t.Errorf("upstreams %v, want %v", s, want)
	}
}

// TestResolvConfChangedByOthers: when another program rewrites resolv.conf
// while the agent manages it, its newer file is kept, at Restore and at the
// repair after a crash alike.
func TestResolvConfChangedByOthers(t *testing.T) {
	const theirs = "# Generated by NetworkManager\nnameserver 10.9.9.9\n"
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "restore", true: "repair"}[crash], func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "resolv.conf")
			state := filepath.Join(dir, "state")
			writeTestFile(t, path, origConf, 0o644)
			r, err := newResolvConfDNS(path, state, zaptest.NewLogger(t), osFS{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Set(agentCfg); err != nil {
				t.Fatal(err)
			}
			writeTestFile(t, path, theirs, 0o644)
			if crash {
				r, err = newResolvConfDNS(path, state, zaptest.NewLogger(t), osFS{})
				if err != nil {
					t.Fatal(err)
				}
			} else if err := r.Restore(); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != theirs {
				t.Errorf("file %q, want the other program's", b)
			}
			if _, err := os.Stat(r.journal.path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("journal left: %v", err)
			}
			checkUpstreams(t, r, []string{"10.9.9.9:53"})
		})
	}
}

// TestResolvConfKeepsOwner checks that the rewritten and the restored files
// keep the original's owner, though both are new inodes. Needs root.
func TestResolvConfKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	writeTestFile(t, path, origConf, 0o644)
	if err := os.Chown(path, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	owner := func() (uint32, uint32) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid
	}
	r, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), osFS{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(agentCfg); err != nil {
		t.Fatal(err)
	}
	if u, g := owner(); u != 1234 || g != 5678 {
		t.Errorf("after Set: owner %d:%d, want 1234:5678", u, g)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if u, g := owner(); u != 1234 || g != 5678 {
		t.Errorf("after Restore: owner %d:%d, want 1234:5678", u, g)
	}
}

// TestResolvConfRealBindMount reproduces what ip netns exec does — a file
// bind-mounted over resolv.conf — in a mount namespace private to this test's
// thread, and checks Set and Restore write through it. Needs root.
func TestResolvConfRealBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	nsFile := filepath.Join(dir, "netns-resolv.conf")
	writeTestFile(t, path, "nameserver 192.0.2.99\n", 0o644)
	writeTestFile(t, nsFile, origConf, 0o644)

	done := make(chan struct{})
	go func() {
		defer close(done)
		if !bindMountOnThread(t, nsFile, path) {
			return
		}
		// The mount point must be recognised ahead, without a temp file.
		rename := func(oldpath, newpath string) error {
			t.Errorf("rename %s onto the mount point attempted", oldpath)
			return os.Rename(oldpath, newpath)
		}
		r, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), renameFS{rename: rename})
		if err != nil {
			t.Error(err)
			return
		}
		if err := r.Set(agentCfg); err != nil {
			t.Errorf("Set over a bind mount: %v", err)
			return
		}
		if b, _ := os.ReadFile(nsFile); !bytes.HasPrefix(b, []byte(resolvConfMarker)) {
			t.Errorf("the mounted file was not written: %q", b)
		}
		if err := r.Restore(); err != nil {
			t.Errorf("Restore over a bind mount: %v", err)
		}
	}()
	<-done
	if b, _ := os.ReadFile(nsFile); string(b) != origConf {
		t.Errorf("mounted file after Restore: %q, want the original", b)
	}
	if b, _ := os.ReadFile(path); string(b) != "nameserver 192.0.2.99\n" {
		t.Errorf("the file under the mount was touched: %q", b)
	}
}

func TestMountinfoHas(t *testing.T) {
	const mi = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" +
		"431 22 8:1 /etc/netns/zt-client/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/sda1 rw\n" +
		"432 22 0:5 / /tmp/with\\040space/resolv.conf rw - tmpfs tmpfs rw\n"
	tests := []struct {
		path string
		want bool
	}{
		{"/etc/resolv.conf", true},
		{"/tmp/with space/resolv.conf", true},
		{"/", true},
		{"/etc", false},
		{"/etc/netns/zt-client/resolv.conf", false}, // the source, not a mount point
	}
	for _, tc := range tests {
		if got := mountinfoHas([]byte(mi), tc.path); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.path, got, tc.want)
		}
	}
}

// TestResolvConfRewrittenThenSetAgain: after another program rewrites the
// file (a new network), Upstreams reports its resolvers, the next Set keeps
// its search list, and Restore puts back its version, not the first one.
func TestResolvConfRewrittenThenSetAgain(t *testing.T) {
	const theirs = "# Generated by NetworkManager\nsearch new.example\nnameserver 10.9.9.9\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	writeTestFile(t, path, origConf, 0o644)
	r, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), osFS{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DNSConfig{Servers: agentCfg.Servers}
	if err := r.Set(cfg); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, path, theirs, 0o644)
	checkUpstreams(t, r, []string{"10.9.9.9:53"})
	if err := r.Set(cfg); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if rc := parseResolvConf(b); !slices.Equal(rc.Search, []string{"new.example"}) || rc.Manager != "ztagent" {
		t.Errorf("after second Set: %q", b)
	}
	checkUpstreams(t, r, []string{"10.9.9.9:53"})
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != theirs {
		t.Errorf("restored %q, want the other program's version", b)
	}
}

// With /etc/resolv.conf a symlink to NetworkManager's (or resolvconf's) file,
// the agent's file replaces the symlink, and the upstreams follow the file
// its owner keeps updating as networks change.
func TestResolvConfUpstreamsFollowSymlinkTarget(t *testing.T) {
	dir := t.TempDir()
	nm := filepath.Join(dir, "NetworkManager", "resolv.conf")
	if err := os.MkdirAll(filepath.Dir(nm), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, nm, "# Generated by NetworkManager\nnameserver 192.0.2.1\n", 0o644)
	path := filepath.Join(dir, "resolv.conf")
	if err := os.Symlink("NetworkManager/resolv.conf", path); err != nil {
		t.Fatal(err)
	}
	r, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), osFS{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(agentCfg); err != nil {
		t.Fatal(err)
	}
	checkUpstreams(t, r, []string{"192.0.2.1:53"})
	writeTestFile(t, nm, "# Generated by NetworkManager\nnameserver 198.51.100.1\n", 0o644)
	checkUpstreams(t, r, []string{"198.51.100.1:53"})
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(path); err != nil || target != "NetworkManager/resolv.conf" {
		t.Fatalf("after Restore: symlink %q, %v", target, err)
	}
}

// dhclient or NetworkManager rewriting resolv.conf while the agent runs: the
// agent takes their file as the new original and points resolv.conf at
// itself again, without waiting for its next Set.
func TestResolvConfReappliedAfterRewrite(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	defer goleak.VerifyNone(t, ignore)
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	writeTestFile(t, path, origConf, 0o644)
	r, err := newResolvConfDNS(path, filepath.Join(dir, "state"), zaptest.NewLogger(t), osFS{})
	if err != nil {
		t.Fatal(err)
	}
	// Checks come from inotify only: none is due by the clock.
	r.watchOpts = &watchOpts{safety: time.Hour, poll: time.Hour, settle: 5 * time.Millisecond, gap: 5 * time.Millisecond}
	if err := r.Set(agentCfg); err != nil {
		t.Fatal(err)
	}
	theirs := "# Generated by NetworkManager\nnameserver 198.51.100.1\n"
	tmp := filepath.Join(dir, "nm.tmp")
	writeTestFile(t, tmp, theirs, 0o644)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	for range 400 { // asynchronous: wait up to 20 s
		if r.isOursLocked() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !r.isOursLocked() {
		t.Fatal("resolv.conf rewritten by another program was not taken back")
	}
	checkUpstreams(t, r, []string{"198.51.100.1:53"})
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != theirs {
		t.Errorf("after Restore:\n%q\nwant NetworkManager's newer file:\n%q", b, theirs)
	}
}

// isOursLocked reports, under the configurator's lock (tests race its
// poller), whether resolv.conf is the file the agent wrote.
func (r *resolvConfDNS) isOursLocked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now, err := r.readNow()
	return err == nil && now.regular() && bytes.Equal(now.content, r.written)
}

// bindMountOnThread locks the calling goroutine to its thread, gives the
// thread a mount namespace of its own and bind-mounts src over dst in it, as
// ip netns exec and containers put resolv.conf. The thread is never
// unlocked, so it exits with the goroutine and the namespace goes with it.
// It reports failures with t.Errorf and returns false.
func bindMountOnThread(t *testing.T, src, dst string) bool {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Errorf("unshare: %v", err)
		return false
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Errorf("make / private: %v", err)
		return false
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Errorf("bind mount: %v", err)
		return false
	}
	return true
}
