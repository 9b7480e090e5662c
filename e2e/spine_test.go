//go:build linux

package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// curl exit codes the tests tell apart.
const (
	curlRefused = 7  // connection refused/reset during connect
	curlTimeout = 28 // the hang a refused flow must never become
)

// TestSpine runs the spine's flows in one lab, in order: the agent starts,
// every flow is checked, and stopping it must leave the client namespace
// exactly as it was.
func TestSpine(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	before := l.clientNetState()
	l.script("agent-start")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			l.script("agent-stop")
		}
	})

	t.Run("private app by name through a stub address", func(t *testing.T) {
		addr := dig(t, l, "web.corp.test")
		if !netip.MustParsePrefix("100.64.0.0/10").Contains(addr) {
			t.Fatalf("web.corp.test = %s, want a stub address in 100.64.0.0/10", addr)
		}
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")
		wantPage(t, page, "hello from corp web", "host=web.corp.test")
	})

	t.Run("wildcard app: two names, two stubs", func(t *testing.T) {
		a := dig(t, l, "a.apps.corp.test")
		b := dig(t, l, "b.apps.corp.test")
		if a == b {
			t.Fatalf("a.apps.corp.test and b.apps.corp.test share stub %s", a)
		}
		for _, name := range []string{"a.apps.corp.test", "b.apps.corp.test"} {
			page := l.must("client", "curl", "-sS", "--max-time", "10", "http://"+name+"/")
			wantPage(t, page, "hello from corp web", "host="+name)
		}
	})

	t.Run("IP app without DNS", func(t *testing.T) {
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://10.20.0.10/")
		wantPage(t, page, "hello from corp web", "local=10.20.0.10:80")
	})

	t.Run("publisher DNS app: real address, steered by name", func(t *testing.T) {
		addr := dig(t, l, "db.pdns.corp.test")
		if addr != netip.MustParseAddr("10.20.0.11") {
			t.Fatalf("db.pdns.corp.test = %s, want the real 10.20.0.11 from the corporate resolver", addr)
		}
		route := l.must("client", "ip", "route", "get", "10.20.0.11")
		if !strings.Contains(route, "dev zt0") {
			t.Fatalf("10.20.0.11 is not routed into the TUN while in use: %s", route)
		}
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://db.pdns.corp.test/")
		wantPage(t, page, "hello from corp web", "host=db.pdns.corp.test", "local=10.20.0.11:80", "remote=10.20.0.")
	})

	t.Run("certificate-pinned process bypasses the agent", func(t *testing.T) {
		// Copies of dig and curl named *-pinned match the tenant's pinned-app
		// exception: their DNS answers and flows go direct.
		dir := t.TempDir()
		for _, tool := range []string{"dig", "curl"} {
			path, err := exec.LookPath(tool)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tool+"-pinned"), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// The public resolver does not know corp names: the real answer is none.
		out := strings.TrimSpace(l.must("client", filepath.Join(dir, "dig-pinned"), "+short", "+time=3", "+tries=1", "web.corp.test", "A"))
		if out != "" {
			t.Fatalf("dig-pinned web.corp.test = %q, want the upstream's empty answer, not a stub", out)
		}
		// To an IP app, the flow leaves the TUN and goes direct (the cloud
		// forwards for this check): the server sees the client's own address.
		l.must("cloud", "sysctl", "-qw", "net.ipv4.ip_forward=1")
		defer l.must("cloud", "sysctl", "-qw", "net.ipv4.ip_forward=0")
		page := l.must("client", filepath.Join(dir, "curl-pinned"), "-sS", "--max-time", "10", "http://10.20.0.10/")
		wantPage(t, page, "hello from corp web", "remote=10.10.0.2:")
		// The same request from plain curl is steered (publisher's address).
		page = l.must("client", "curl", "-sS", "--max-time", "10", "http://10.20.0.10/")
		wantPage(t, page, "hello from corp web", "remote=10.20.0.10:")
	})

	t.Run("app denied by policy is reset, not hung", func(t *testing.T) {
		addr := dig(t, l, "secret.corp.test")
		if !netip.MustParsePrefix("100.64.0.0/10").Contains(addr) {
			t.Fatalf("secret.corp.test = %s, want a stub (it is steered, only the PoP denies it)", addr)
		}
		out, code := l.run("client", "curl", "-sS", "--max-time", "10", "http://secret.corp.test/")
		if code != curlRefused {
			t.Fatalf("curl secret.corp.test: exit %d, want %d (refused); output:\n%s", code, curlRefused, out)
		}
	})

	t.Run("port outside the app definition is not steered", func(t *testing.T) {
		// By name (a stub address): there is no real destination, so the
		// agent resets the flow at once. (-4: the name has an IPv6 stub
		// too, which curl would try as well, a second refused flow.)
		before := flows(t, l)
		out, code := l.run("client", "curl", "-4", "-sS", "--max-time", "10", "http://web.corp.test:8080/")
		if code != curlRefused {
			t.Errorf("curl web.corp.test:8080: exit %d, want %d (refused by the agent); output:\n%s", code, curlRefused, out)
		}
		// By address: the flow leaves the TUN and goes direct, as it would
		// without the agent. The cloud namespace forwards for this one check,
		// so the corporate server sees the client's own address, not the
		// publisher's.
		l.must("cloud", "sysctl", "-qw", "net.ipv4.ip_forward=1")
		defer l.must("cloud", "sysctl", "-qw", "net.ipv4.ip_forward=0")
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://10.20.0.10:8080/")
		wantPage(t, page, "hello from corp web", "local=10.20.0.10:8080", "remote=10.10.0.2:")
		after := flows(t, l)
		if after.NotSteered-before.NotSteered != 2 || after.Steered != before.Steered {
			t.Errorf("flows before %+v, after %+v: want 2 more not_steered and no new steered", before, after)
		}
	})

	t.Run("public name resolves upstream and goes direct", func(t *testing.T) {
		before := flows(t, l)
		if addr := dig(t, l, "www.public.test"); addr != netip.MustParseAddr("10.10.0.1") {
			t.Fatalf("www.public.test = %s, want 10.10.0.1 from the original resolver", addr)
		}
		route := l.must("client", "ip", "route", "get", "10.10.0.1")
		if strings.Contains(route, "zt0") || !strings.Contains(route, "dev eth0") {
			t.Fatalf("route to the public site goes through the tunnel: %s", route)
		}
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://www.public.test/")
		wantPage(t, page, "hello from public web")
		if after := flows(t, l); after.PacketsIn != before.PacketsIn {
			t.Errorf("%d packets entered the TUN device", after.PacketsIn-before.PacketsIn)
		}
	})

	t.Run("ztdiag status", func(t *testing.T) {
		var st struct {
			State      string
			Enrollment struct{ Tenant, User string }
			Tunnel     struct{ State string }
			Apps       []struct{ ID string }
			Stubs      []struct{ FQDN string }
		}
		out := l.must("client", l.bin("ztdiag"), "--socket", l.sock(), "status", "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if st.State != "running" || st.Tunnel.State != "connected" || st.Enrollment.User != "alice@demo.test" {
			t.Fatalf("unexpected status: %+v", st)
		}
		if len(st.Stubs) < 3 {
			t.Fatalf("status lists %d stubs, want the names resolved above", len(st.Stubs))
		}
	})

	t.Run("secrets are read from files, never shown in ps", func(t *testing.T) {
		for _, proc := range []struct{ name, secret, flag string }{
			{"agent", "org.key", "token=@"},
			{"publisher", "publisher.token", "@"},
		} {
			pid, err := os.ReadFile(filepath.Join(l.dir, proc.name+".pid"))
			if err != nil {
				t.Fatal(err)
			}
			cmdline, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/cmdline")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(l.dir, "secrets", proc.secret)
			secret, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			args := strings.ReplaceAll(string(cmdline), "\x00", " ")
			if strings.Contains(args, strings.TrimSpace(string(secret))) || !strings.Contains(args, proc.flag+path) {
				t.Errorf("%s runs as %q: want the secret as %s%s, not its value", proc.name, args, proc.flag, path)
			}
			if st, err := os.Stat(path); err != nil {
				t.Error(err)
			} else if st.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v: want readable by its owner only", path, st.Mode())
			}
		}
	})

	t.Run("kill -9 then restart repairs and works", func(t *testing.T) {
		pid := agentPID(t, l)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for syscall.Kill(pid, 0) == nil {
			time.Sleep(20 * time.Millisecond)
		}
		l.script("agent-start")
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")
		wantPage(t, page, "hello from corp web")
	})

	t.Run("stop restores resolv.conf, addresses and routes", func(t *testing.T) {
		l.script("agent-stop")
		stopped = true
		after := l.clientNetState()
		if after != before {
			t.Fatalf("client namespace changed:\nbefore: %+v\nafter:  %+v", before, after)
		}
	})
}

func dig(t *testing.T, l *lab, name string) netip.Addr {
	t.Helper()
	out := strings.TrimSpace(l.must("client", "dig", "+short", "+time=3", "+tries=1", name, "A"))
	lines := strings.Fields(out)
	if len(lines) == 0 {
		t.Fatalf("dig %s: no answer", name)
	}
	addr, err := netip.ParseAddr(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("dig %s: %q", name, out)
	}
	return addr
}

func wantPage(t *testing.T, page string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(page, p) {
			t.Fatalf("page %q does not contain %q", page, p)
		}
	}
}

// flows reads the agent's flow counters.
func flows(t *testing.T, l *lab) ctlapi.FlowStatus {
	t.Helper()
	return agentStatus(t, l).Flows
}

// agentStatus reads the agent's status.
func agentStatus(t *testing.T, l *lab) ctlapi.Status {
	t.Helper()
	var st ctlapi.Status
	out := l.must("client", l.bin("ztdiag"), "--socket", l.sock(), "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}
