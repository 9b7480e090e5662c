//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLabAgentStart checks scripts/lab.sh's agent-start as people use it:
// ztagent flags given after the command (they must reach ztagent before the
// install parameters, where flag parsing stops), and a readiness check that
// holds when the status is far larger than a pipe's buffer (thousands of stub
// assignments, restored at the restart).
func TestLabAgentStart(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	l.script("agent-start", "--log-level", "debug")
	t.Cleanup(func() { l.script("agent-stop") })
	l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")
	log, err := os.ReadFile(filepath.Join(l.dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "\tdebug\t") || !strings.Contains(string(log), "flow steered") {
		t.Fatalf("agent-start --log-level debug: no \"flow steered\" debug line in the agent's log")
	}

	// Give the agent 4,000 stub assignments: one name each under the
	// wildcard app, asked in one dig run.
	const names = 4000
	var batch strings.Builder
	for i := range names {
		fmt.Fprintf(&batch, "n%d.apps.corp.test\n", i)
	}
	file := filepath.Join(l.dir, "names.txt")
	if err := os.WriteFile(file, []byte(batch.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	l.must("client", "dig", "+short", "+time=3", "+tries=1", "-f", file)
	status := l.must("client", l.bin("ztdiag"), "--socket", l.sock(), "status", "--json")
	if n := strings.Count(status, `"fqdn"`); n < names || len(status) < 256<<10 {
		t.Fatalf("status lists %d stubs in %d bytes; want %d stubs, over 256 KiB", n, len(status), names)
	}

	// The restart restores them: the readiness check reads the whole status.
	l.script("agent-stop")
	l.script("agent-start", "--log-level=info")
}
