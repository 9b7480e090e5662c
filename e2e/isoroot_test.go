//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// isoRoot is a throw-away copy of this machine's root file system in which a
// package can be installed, run as a service and removed without changing
// the host: the host's / is the read-only lower layer of an overlay whose
// upper layer is a tmpfs, mounted in a private mount namespace (nothing
// propagates back) entered from the lab's client network namespace (the
// agent's TUN, routes and DNS are the lab's). Inside, the commands run
// chrooted in the overlay with their own /proc, /run and /tmp, in a PID
// namespace whose init (a bash that reaps orphans, as the System V init
// script's daemon becomes one) is killed at the end, which ends every
// process the test started there. dpkg and rpm write their databases,
// /etc, /usr and /var in the copy only; the upper layer is the exact list of
// what the test changed.
type isoRoot struct {
	t      *testing.T
	dir    string // on the host: rw/ (the tmpfs, inside) and root/ (the overlay)
	holder *exec.Cmd
	init   int // the namespace's init, as the host numbers it
}

// newIsoRoot sets the copy up; netns is the network namespace it runs in.
func newIsoRoot(t *testing.T, netns string) *isoRoot {
	t.Helper()
	for _, tool := range []string{"unshare", "nsenter", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED LOUDLY: %s is not installed", tool)
		}
	}
	dir := t.TempDir()
	r := &isoRoot{t: t, dir: dir}
	for _, d := range []string{"rw", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rw, root := filepath.Join(dir, "rw"), filepath.Join(dir, "root")
	script := strings.Join([]string{
		"set -e",
		"mount -t tmpfs -o mode=0755 ztpkg-rw " + rw,
		"mkdir " + rw + "/upper " + rw + "/work",
		"mount -t overlay ztpkg-root -o lowerdir=/,upperdir=" + rw + "/upper,workdir=" + rw + "/work " + root,
		"mount -t proc proc " + root + "/proc",
		"mount --rbind /sys " + root + "/sys",
		"mount --rbind /dev " + root + "/dev",
		"mount -t tmpfs -o mode=0755 run " + root + "/run",
		"mount -t tmpfs -o mode=1777 tmp " + root + "/tmp",
		"echo ready",
		// bash reaps every child, adopted ones too, each time sleep ends
		"while :; do sleep 1; done",
	}, "\n")
	r.holder = exec.Command("ip", "netns", "exec", netns,
		"unshare", "--mount", "--pid", "--fork", "--propagation", "private", "bash", "-c", script)
	stdout, err := r.holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	r.holder.Stderr = &stderr
	if err := r.holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		r.holder.Wait()
		t.Fatalf("isolated root: %q\n%s", line, stderr.String())
	}
	// unshare --fork runs bash as its child, the new namespace's init.
	r.init = childOf(r.holder.Process.Pid)
	if r.init == 0 {
		t.Fatal("isolated root: the namespace's init not found")
	}
	return r
}

// childOf returns a child of pid, by /proc.
func childOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			return n
		}
	}
	return 0
}

// close kills the namespace's init, which ends every process in it; the
// mounts go with the last of them.
func (r *isoRoot) close() {
	if r.init != 0 {
		syscall.Kill(r.init, syscall.SIGKILL)
	}
	r.holder.Process.Kill()
	r.holder.Wait()
}

// path is p inside the copy, as the host reaches it (through the init's
// mount namespace).
func (r *isoRoot) path(p string) string {
	return filepath.Join("/proc", strconv.Itoa(r.init), "root", r.dir, "root", p)
}

// upper is the overlay's upper layer: what the test changed.
func (r *isoRoot) upper() string {
	return filepath.Join("/proc", strconv.Itoa(r.init), "root", r.dir, "rw", "upper")
}

func (r *isoRoot) writeFile(p string, data []byte, mode os.FileMode) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.path(p)), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.path(p), data, mode); err != nil {
		r.t.Fatal(err)
	}
}

func (r *isoRoot) readFile(p string) string {
	b, _ := os.ReadFile(r.path(p))
	return string(b)
}

func (r *isoRoot) exists(p string) bool {
	_, err := os.Lstat(r.path(p))
	return err == nil
}

// run runs a shell command inside the copy with env added to the test's
// environment; it returns the combined output and the exit code (-1 when
// it could not run or timed out).
func (r *isoRoot) run(env []string, command string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(r.init), "-m", "-n", "-p",
		"chroot", filepath.Join(r.dir, "root"), "sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok && ctx.Err() == nil {
			code = ee.ExitCode()
		}
	}
	return out.String(), code
}

func (r *isoRoot) must(env []string, command string) string {
	r.t.Helper()
	out, code := r.run(env, command)
	if code != 0 {
		r.t.Fatalf("in the isolated root: %s: exit %d\n%s", command, code, out)
	}
	return out
}

// changed lists the paths in the upper layer whose name contains s: what
// the test left in the copy. A whiteout (a character device 0/0: the copy
// deleted a file or directory the host has, e.g. a /var/log/ztagent of the
// host's own) is not something left.
func (r *isoRoot) changed(s string) []string {
	var found []string
	up := r.upper()
	filepath.Walk(up, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !strings.Contains(filepath.Base(p), s) {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode()&os.ModeCharDevice != 0 && st.Rdev == 0 {
			return nil
		}
		found = append(found, strings.TrimPrefix(p, up))
		return nil
	})
	return found
}
