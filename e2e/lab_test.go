//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lab is one running copy of scripts/lab.sh under a unique namespace prefix.
type lab struct {
	t      *testing.T
	prefix string
	root   string            // repository root
	dir    string            // state and logs
	labEnv map[string]string // lab.sh's environment beyond the prefix and directory
}

func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("ZT_E2E") == "" {
		t.Skip("e2e tests run under `make e2e` (ZT_E2E=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: e2e tests need root to create network namespaces")
	}
}

// newLab brings up the namespaces and cloud services (not the agent) and
// registers their teardown, which runs even when the test fails.
func newLab(t *testing.T) *lab {
	t.Helper()
	return newLabEnv(t, nil)
}

// newLabEnv is newLab with more of lab.sh's environment (e.g. ZT_TENANT).
func newLabEnv(t *testing.T, env map[string]string) *lab {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("zte%d", os.Getpid()%100000)
	l := &lab{t: t, prefix: prefix, root: root, dir: filepath.Join(root, ".lab", prefix), labEnv: env}
	os.RemoveAll(l.dir)
	t.Cleanup(func() {
		if t.Failed() {
			l.dumpLogs()
		}
		l.script("down")
	})
	if out, err := l.scriptOut(map[string]string{"ZT_LAB_NOAGENT": "1"}, "up"); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	return l
}

func (l *lab) env(extra map[string]string) []string {
	env := append(os.Environ(), "ZT_LAB="+l.prefix, "ZT_LAB_DIR="+l.dir)
	for k, v := range l.labEnv {
		env = append(env, k+"="+v)
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

func (l *lab) scriptOut(extra map[string]string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(l.root, "scripts/lab.sh"), args...)
	cmd.Env = l.env(extra)
	// A service the script starts must not hold its output open; if one
	// does, the script's end still ends the wait.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *lab) script(args ...string) {
	l.t.Helper()
	if out, err := l.scriptOut(nil, args...); err != nil {
		l.t.Fatalf("lab.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (l *lab) ns(role string) string { return l.prefix + "-" + role }

// run runs a command in a namespace and returns its combined output and exit
// code (-1 when it could not run or timed out).
func (l *lab) run(role string, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.ns(role)}, args...)...)
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

// must runs a command that must succeed and returns its output.
func (l *lab) must(role string, args ...string) string {
	l.t.Helper()
	out, code := l.run(role, args...)
	if code != 0 {
		l.t.Fatalf("%s: %s: exit %d\n%s", role, strings.Join(args, " "), code, out)
	}
	return out
}

func (l *lab) bin(name string) string { return filepath.Join(l.root, "bin", name) }

func (l *lab) sock() string { return filepath.Join(l.dir, "agent.sock") }

func (l *lab) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(l.dir, "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		l.t.Logf("--- %s\n%s", f, strings.Join(lines, "\n"))
	}
}

// netState is what the agent must leave exactly as it found it.
type netState struct{ resolv, addrs, routes, rules string }

func (l *lab) clientNetState() netState {
	b, err := os.ReadFile(filepath.Join("/etc/netns", l.ns("client"), "resolv.conf"))
	if err != nil {
		l.t.Fatal(err)
	}
	return netState{
		resolv: string(b),
		addrs:  l.must("client", "ip", "-o", "addr", "show"),
		routes: l.must("client", "ip", "route", "show", "table", "all") + l.must("client", "ip", "-6", "route", "show", "table", "all"),
		rules:  l.must("client", "ip", "rule", "show") + l.must("client", "ip", "-6", "rule", "show"),
	}
}

// agentPID reads the pid of the agent the lab started.
func agentPID(t *testing.T, l *lab) int {
	t.Helper()
	return pidOf(t, l, "agent")
}

// pidOf reads the pid of a process the lab started (agent, publisher, ...).
func pidOf(t *testing.T, l *lab, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
