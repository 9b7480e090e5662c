//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// pub2Token is pub2's registration token in testdata/tenants/select.yaml.
const pub2Token = "demo-publisher2-token-6b0d2e8f43a1"

// TestSelection: app ha is served by pub1 (the lab's publisher, next to the
// PoP) and pub2, which reaches the PoP through a delay relay (+20 ms each
// way). pub2 resolves names with its own resolver, which gives ha.corp.test
// the address 10.20.0.11, so the page says which publisher carried a flow
// (local=10.20.0.10 for pub1, 10.20.0.11 for pub2). The agent must select
// pub1 and send every flow there; once pub1 stops, new flows must reach pub2
// within 2 s. Then the tenant's second PoP: the agent uses one of the two,
// and when that one stops it fails over to the other.
func TestSelection(t *testing.T) {
	requireE2E(t)
	tenantFile, err := filepath.Abs(filepath.Join("..", "testdata", "tenants", "select.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLabEnv(t, map[string]string{"ZT_TENANT": tenantFile})
	ca := filepath.Join(l.dir, "cloud", "ca.pem")
	tokenFile := filepath.Join(l.dir, "secrets", "publisher2.token")
	if err := os.WriteFile(tokenFile, []byte(pub2Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.background("dns-pub2", "corp", "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=10.20.0.11", "--address=/corp.test/10.20.0.11", "--pid-file="+filepath.Join(l.dir, "dnsmasq-pub2.pid2"))
	// The tenant's second PoP. pub1 (the lab's) dials both PoPs, as its
	// enrollment named them; pub2 runs one process per PoP, each through a
	// delay relay (--pop).
	pop2 := l.background("pop2", "cloud", l.bin("ztcloud"), "serve", "--roles", "pop", "--tenant", tenantFile,
		"--state", filepath.Join(l.dir, "cloud"), "--pop", "10.10.0.1:8445", "--names", "10.10.0.1")
	pub2 := func(name, relay, pop string) {
		l.background("relay-"+name, "corp", l.bin("delayrelay"), "--listen", relay, "--target", pop, "--delay", "20ms")
		l.background(name, "corp", l.bin("ztcloud"), "publisher", "--name", "pub2", "--token", "@"+tokenFile,
			"--tenant-url", "https://10.10.0.1:8444", "--cacert", ca, "--resolver", "10.20.0.11:53",
			"--state", filepath.Join(l.dir, "publisher2"), "--pop", relay)
	}
	pub2("publisher2", "10.20.0.10:9443", "10.10.0.1:8443")
	// After pub2's first run has enrolled it (its state directory holds the
	// certificate), its second process only loads it.
	waitFile(t, filepath.Join(l.dir, "publisher2", "publisher.json"))
	pub2("publisher2b", "10.20.0.10:9445", "10.10.0.1:8445")

	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })

	t.Run("flows go to the near publisher", func(t *testing.T) {
		st := waitAgent(t, l, "both publishers of ha measured", func(st ctlapi.Status) bool {
			ps := appPublishers(st, "ha")
			return ps["pub1"].RTT > 0 && ps["pub2"].RTT > 0
		})
		ps := appPublishers(st, "ha")
		t.Logf("pub1 %v (%s), pub2 %v (%s)", ps["pub1"].RTT, ps["pub1"].Bucket, ps["pub2"].RTT, ps["pub2"].Bucket)
		if !ps["pub1"].Selected || ps["pub2"].Selected {
			t.Fatalf("selection %+v, want pub1 only", ps)
		}
		if ps["pub2"].RTT < 40*time.Millisecond {
			t.Errorf("pub2 behind +40 ms measured %v", ps["pub2"].RTT)
		}
		// The lab's pub1 holds a connection to each PoP (its log does not
		// say it twice: the logger writes a repeated line once a minute).
		pid, err := os.ReadFile(filepath.Join(l.dir, "publisher.pid"))
		if err != nil {
			t.Fatal(err)
		}
		for _, pop := range []string{"10.10.0.1:8443", "10.10.0.1:8445"} {
			// The second PoP may have come up after pub1's first try.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				conns := l.must("corp", "ss", "-tnpH", "state", "established", "dst", pop)
				if strings.Contains(conns, "pid="+strings.TrimSpace(string(pid))+",") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("pub1 (pid %s) has no connection to PoP %s:\n%s", strings.TrimSpace(string(pid)), pop, conns)
				}
			}
		}
		for range 5 {
			page := l.must("client", "curl", "-sS", "--max-time", "10", "http://ha.corp.test/")
			wantPage(t, page, "hello from corp web", "local=10.20.0.10:80")
		}
		out := l.must("client", l.bin("ztdiag"), "--socket", l.sock(), "status")
		t.Logf("ztdiag status:\n%s", out)
		for _, want := range []string{"publisher pub1", "SELECTED", "publisher pub2", "PoP 10.10.0.1:8443", "PoP 10.10.0.1:8445"} {
			if !strings.Contains(out, want) {
				t.Errorf("ztdiag status lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("near publisher stops: new flows go to the far one within 2 s", func(t *testing.T) {
		start := time.Now()
		l.stopLabProcess("publisher")
		var took time.Duration
		for {
			page, code := l.run("client", "curl", "-sS", "--max-time", "2", "http://ha.corp.test/")
			if code == 0 && strings.Contains(page, "local=10.20.0.11:80") {
				took = time.Since(start)
				break
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("no flow reached pub2 in 20 s; last: exit %d %s", code, page)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("first flow through pub2 %v after pub1 was told to stop", took)
		if took > 2*time.Second {
			t.Errorf("new flows reached the far publisher after %v, want <= 2 s", took)
		}
		st := waitAgent(t, l, "pub2 selected", func(st ctlapi.Status) bool { return appPublishers(st, "ha")["pub2"].Selected })
		if p1 := appPublishers(st, "ha")["pub1"]; p1.Selected || !strings.Contains(p1.Error, "not online") {
			t.Errorf("pub1 after it stopped: %+v", p1)
		}
	})

	t.Run("PoP in use stops: the agent fails over to the other", func(t *testing.T) {
		st := agentStatus(t, l)
		if len(st.Tunnel.PoPs) != 2 {
			t.Fatalf("status lists PoPs %+v, want the tenant's two", st.Tunnel.PoPs)
		}
		inUse := st.Tunnel.PoP
		t.Logf("PoPs %+v, in use %s", st.Tunnel.PoPs, inUse)
		start := time.Now()
		if inUse == "10.10.0.1:8445" {
			stopProcess(t, pop2)
		} else {
			l.stopLabProcess("ztcloud")
		}
		waitAgent(t, l, "tunnel to the other PoP", func(st ctlapi.Status) bool {
			return st.Tunnel.State == "connected" && st.Tunnel.PoP != inUse
		})
		for {
			page, code := l.run("client", "curl", "-sS", "--max-time", "2", "http://ha.corp.test/")
			if code == 0 && strings.Contains(page, "hello from corp web") {
				break
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("no flow through the other PoP in 20 s; last: exit %d %s", code, page)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("a flow worked through the other PoP %v after the one in use was told to stop", time.Since(start))
	})
}

// appPublishers returns app's publishers as the agent's status shows them.
func appPublishers(st ctlapi.Status, app string) map[string]ctlapi.PublisherStatus {
	out := map[string]ctlapi.PublisherStatus{}
	for _, a := range st.Apps {
		if a.ID == app {
			for _, p := range a.Publishers {
				out[p.Name] = p
			}
		}
	}
	return out
}

// waitAgent polls the agent's status until ok accepts it (20 s at most).
func waitAgent(t *testing.T, l *lab, what string, ok func(ctlapi.Status) bool) ctlapi.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := agentStatus(t, l)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s; status %+v", what, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// background runs a command in the namespace of role, logging to
// DIR/name.log, until the test's end.
func (l *lab) background(name, role string, args ...string) *exec.Cmd {
	l.t.Helper()
	logf, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(role)}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		stopProcess(l.t, cmd)
		logf.Close()
	})
	return cmd
}

// stopProcess sends SIGTERM and waits (SIGKILL after 10 s); stopping twice
// is harmless.
func stopProcess(t *testing.T, cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Logf("%s did not stop in 10 s: killed", cmd.Path)
		cmd.Process.Kill()
		<-done
	}
}

// stopLabProcess sends SIGTERM to a process lab.sh started (by its pid
// file) without waiting; lab.sh's down reaps what is left.
func (l *lab) stopLabProcess(name string) {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, name+".pid"))
	if err != nil {
		l.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		l.t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGTERM)
}

// waitFile waits up to 20 s for path to exist.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear in 20 s", path)
		}
	}
}
