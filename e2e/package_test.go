//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/packaging/linuxpkg"
)

// The installed-package tests install the deb (and the rpm) built from
// bin/ into an isolated copy of this machine's root (isoRoot) inside the
// lab's client namespace, with the silent parameters pointing at the lab's
// tenant, and go through install, upgrade, remove and purge as an
// administrator would. This machine's PID 1 is not systemd, so
// kardianos/service registers a System V init script and `service` starts
// it: the command the script runs is the one a systemd unit would run
// (`ztagent run --state-dir … --socket …`), but systemd itself is not
// exercised here.

// pkgVersions are the two builds: install the first, upgrade to the second.
var pkgVersions = []string{"0.0.1", "0.0.2"}

// buildPackages builds the packages of format from bin/ into a directory
// inside the isolated root and returns their paths there.
func buildPackages(t *testing.T, l *lab, r *isoRoot, format string) []string {
	t.Helper()
	var paths []string
	for _, v := range pkgVersions {
		out := t.TempDir()
		p, err := linuxpkg.Build(format, linuxpkg.Options{Version: v, Arch: "amd64",
			BinDir: filepath.Dir(l.bin("ztagent")), OutDir: out})
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		inside := "/tmp/pkgs/" + filepath.Base(p)
		r.writeFile(inside, data, 0o644)
		paths = append(paths, inside)
	}
	return paths
}

// pkgFixture is a lab and an isolated root set up as a machine in it.
type pkgFixture struct {
	t      *testing.T
	l      *lab
	r      *isoRoot
	resolv string // the client's resolv.conf before the agent
	orgKey string
}

func newPkgFixture(t *testing.T) *pkgFixture {
	t.Helper()
	requireE2E(t)
	if _, err := os.Stat(filepath.Join("..", "bin", "ztagent")); err != nil {
		t.Fatalf("bin/ztagent: %v (make e2e builds it)", err)
	}
	l := newLab(t)
	r := newIsoRoot(t, l.ns("client"))
	f := &pkgFixture{t: t, l: l, r: r}
	resolv, err := os.ReadFile(filepath.Join(l.dir, "client-resolv.conf.orig"))
	if err != nil {
		t.Fatal(err)
	}
	f.resolv = string(resolv)
	r.writeFile("/etc/resolv.conf", resolv, 0o644)
	ca, err := os.ReadFile(filepath.Join(l.dir, "cloud", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	r.writeFile("/etc/lab-ca.pem", ca, 0o644)
	key, err := os.ReadFile(filepath.Join(l.dir, "secrets", "org.key"))
	if err != nil {
		t.Fatal(err)
	}
	f.orgKey = strings.TrimSpace(string(key))
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	t.Cleanup(func() {
		// The host is untouched: its resolver, its services, its packages.
		if now, _ := os.ReadFile("/etc/resolv.conf"); string(now) != string(hostResolv) {
			t.Errorf("the host's /etc/resolv.conf changed")
		}
		for _, p := range []string{"/etc/init.d/ztagent", "/usr/bin/ztagent", "/var/lib/dpkg/info/ztagent.list",
			"/etc/default/ztagent", "/var/lib/ztagent"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s exists on the host", p)
			}
		}
		if t.Failed() {
			for _, log := range []string{"/var/log/ztagent.log", "/var/log/ztagent.err"} {
				if s := r.readFile(log); s != "" {
					lines := strings.Split(strings.TrimSpace(s), "\n")
					if len(lines) > 40 {
						lines = lines[len(lines)-40:]
					}
					t.Logf("--- %s (isolated root)\n%s", log, strings.Join(lines, "\n"))
				}
			}
		}
	})
	return f
}

// status reads `ztdiag status --json` inside the root, through the default
// socket, as an administrator would.
func (f *pkgFixture) status() (ctlapi.Status, bool) {
	var st ctlapi.Status
	out, code := f.r.run(nil, "ztdiag status --json")
	return st, code == 0 && json.Unmarshal([]byte(out), &st) == nil
}

// waitConnected waits until the service is connected and returns its status.
func (f *pkgFixture) waitConnected() ctlapi.Status {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, ok := f.status()
		if ok && st.State == ctlapi.StateRunning && st.Tunnel.State == "connected" {
			return st
		}
		if time.Now().After(deadline) {
			out, _ := f.r.run(nil, "ztdiag status")
			f.t.Fatalf("the installed service did not connect in 30 s:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// reachApp fetches the lab's corporate web app by name through the agent.
func (f *pkgFixture) reachApp() {
	f.t.Helper()
	page := f.r.must(nil, "curl -sS --max-time 10 http://web.corp.test/")
	wantPage(f.t, page, "hello from corp web", "host=web.corp.test")
}

// agentPID is the running service's process (the System V script's pid
// file), or "" when none runs.
func (f *pkgFixture) agentPID() string {
	out, code := f.r.run(nil, `p=$(cat /var/run/ztagent.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"`)
	if code != 0 {
		return ""
	}
	return strings.TrimSpace(out)
}

// checkInstalled: the files and the registration are there, and the
// resolver is the agent's (also proves that the checks see the copy).
func (f *pkgFixture) checkInstalled() {
	f.t.Helper()
	for _, p := range []string{"/usr/bin/ztagent", "/usr/bin/ztdiag", "/etc/init.d/ztagent", "/var/lib/ztagent/params.json"} {
		if !f.r.exists(p) {
			f.t.Errorf("%s missing after install", p)
		}
	}
	if got := f.r.readFile("/etc/resolv.conf"); got == f.resolv || !strings.Contains(got, "nameserver") {
		f.t.Fatalf("the agent did not take the resolver over:\n%s", got)
	}
	if f.agentPID() == "" {
		f.t.Fatal("no service process")
	}
	if len(f.r.changed("ztagent")) == 0 {
		f.t.Fatal("the overlay's upper layer shows no ztagent file")
	}
}

// checkRemoved: the service is stopped and unregistered, and the resolver
// is the one from before the agent.
func (f *pkgFixture) checkRemoved() {
	f.t.Helper()
	if got := f.r.readFile("/etc/resolv.conf"); got != f.resolv {
		f.t.Errorf("resolv.conf after removal:\n%s\nwant:\n%s", got, f.resolv)
	}
	if out, code := f.r.run(nil, "pgrep -x ztagent"); code == 0 {
		f.t.Errorf("ztagent still runs after removal: %s", out)
	}
	for _, p := range []string{"/etc/init.d/ztagent", "/etc/rc2.d/S50ztagent", "/etc/rc0.d/K02ztagent",
		"/etc/systemd/system/ztagent.service", "/usr/bin/ztagent", "/usr/bin/ztdiag"} {
		if f.r.exists(p) {
			f.t.Errorf("%s left after removal", p)
		}
	}
}

// checkPurged: nothing of ztagent is left in the copy but the package
// manager's own log lines.
func (f *pkgFixture) checkPurged() {
	f.t.Helper()
	if left := f.r.changed("ztagent"); len(left) > 0 {
		f.t.Errorf("left after purge: %s", strings.Join(left, " "))
	}
}

// TestPackageDeb: the deb installed the Debian way (parameters in the
// environment of dpkg, the org key never on a command line), upgraded with
// no parameters (the saved ones and the enrollment kept), removed after the
// agent was killed (the resolver restored from the journal), purged.
func TestPackageDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("SKIPPED LOUDLY: dpkg is not installed")
	}
	f := newPkgFixture(t)
	debs := buildPackages(t, f.l, f.r, "deb")

	env := []string{"ZTAGENT_HOST=10.10.0.1:8444", "ZTAGENT_UPN=alice@demo.test",
		"ZTAGENT_CACERT=/etc/lab-ca.pem", "ZTAGENT_TOKEN=" + f.orgKey}
	out := f.r.must(env, "dpkg -i "+debs[0])
	if strings.Contains(out, f.orgKey) {
		t.Errorf("the org key shows in dpkg's output:\n%s", out)
	}
	first := f.waitConnected()
	f.reachApp()
	if first.Enrollment.DeviceID == "" || first.Enrollment.User != "alice@demo.test" {
		t.Fatalf("enrollment %+v", first.Enrollment)
	}
	f.checkInstalled()
	pid := f.agentPID()

	t.Run("upgrade", func(t *testing.T) {
		f.r.must(nil, "dpkg -i "+debs[1])
		if v := strings.TrimSpace(f.r.must(nil, "dpkg-query -W -f '${Version}' ztagent")); v != pkgVersions[1]+"-1" {
			t.Errorf("version after upgrade %q", v)
		}
		st := f.waitConnected()
		if st.Enrollment.DeviceID != first.Enrollment.DeviceID {
			t.Errorf("upgrade re-enrolled: device %s, was %s", st.Enrollment.DeviceID, first.Enrollment.DeviceID)
		}
		if now := f.agentPID(); now == "" || now == pid {
			t.Errorf("the service was not restarted with the new binary (pid %q, was %q)", now, pid)
		}
		f.reachApp()
		// The conffile way, and the post-install step run again: the same
		// parameters in /etc/default/ztagent, then dpkg-reconfigure.
		conf := f.r.readFile("/etc/default/ztagent") + "host=10.10.0.1:8444\ntoken=" + f.orgKey +
			"\nupn=alice@demo.test\ncacert=/etc/lab-ca.pem\n"
		f.r.writeFile("/etc/default/ztagent", []byte(conf), 0o600)
		f.r.must(nil, "dpkg-reconfigure -fnoninteractive ztagent")
		if st := f.waitConnected(); st.Enrollment.DeviceID != first.Enrollment.DeviceID {
			t.Errorf("reconfigure re-enrolled")
		}
		f.reachApp()
	})

	t.Run("remove after a crash", func(t *testing.T) {
		f.r.must(nil, "kill -KILL $(cat /var/run/ztagent.pid); sleep 1")
		if f.r.readFile("/etc/resolv.conf") == f.resolv {
			t.Fatal("resolv.conf restored before removal: the crash case is not tested")
		}
		f.r.must(nil, "dpkg -r ztagent")
		f.checkRemoved()
		if !f.r.exists("/var/lib/ztagent/params.json") || !f.r.exists("/etc/default/ztagent") {
			t.Error("remove deleted the state or the conffile (only purge should)")
		}
	})

	t.Run("purge", func(t *testing.T) {
		f.r.must(nil, "dpkg -P ztagent")
		f.checkPurged()
	})
}

// TestPackageRPM: the rpm installed the seed's way (/etc/ztagent/install.params
// in place before the install), upgraded with rpm -U (enrollment kept), then
// erased with ZTAGENT_PURGE=1 (resolver restored, service gone, no file left).
func TestPackageRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("SKIPPED LOUDLY: rpm is not installed")
	}
	f := newPkgFixture(t)
	rpms := buildPackages(t, f.l, f.r, "rpm")
	f.r.writeFile("/etc/ztagent/install.params", []byte("# the lab's tenant\nhost=10.10.0.1:8444\ntoken="+f.orgKey+
		"\nupn=alice@demo.test\ncacert=/etc/lab-ca.pem\n"), 0o600)

	// --nodeps: the rpm declares none, but rpm on Debian knows no package
	// that provides /bin/sh for the scriptlets.
	f.r.must(nil, "rpm -i --nodeps "+rpms[0])
	first := f.waitConnected()
	f.reachApp()
	f.checkInstalled()

	f.r.must(nil, "rpm -U --nodeps "+rpms[1])
	if v := strings.TrimSpace(f.r.must(nil, "rpm -q --qf '%{VERSION}' ztagent")); v != pkgVersions[1] {
		t.Errorf("version after upgrade %q", v)
	}
	if st := f.waitConnected(); st.Enrollment.DeviceID != first.Enrollment.DeviceID {
		t.Errorf("upgrade re-enrolled: device %s, was %s", st.Enrollment.DeviceID, first.Enrollment.DeviceID)
	}
	f.reachApp()

	f.r.must([]string{"ZTAGENT_PURGE=1"}, "rpm -e --nodeps ztagent")
	f.checkRemoved()
	f.checkPurged()
}
