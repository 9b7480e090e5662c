//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var pingReceived = regexp.MustCompile(`(\d+) received`)

// ping runs ping(8) in the client namespace and returns how many replies it
// got and its output. Timeouts are generous: only replies are asserted.
func ping(t *testing.T, l *lab, args ...string) (int, string) {
	t.Helper()
	out, _ := l.run("client", append([]string{"ping", "-n", "-W", "8"}, args...)...)
	m := pingReceived.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s: no summary in output:\n%s", strings.Join(args, " "), out)
	}
	n, _ := strconv.Atoi(m[1])
	return n, out
}

// echoRepliesSent reads how many echo replies the corporate namespace's
// kernel has sent (/proc/net/snmp, Icmp OutEchoReps): the real host's.
func echoRepliesSent(t *testing.T, l *lab) int {
	t.Helper()
	out := l.must("corp", "cat", "/proc/net/snmp")
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "OutEchoReps" && i < len(f) {
				v, _ := strconv.Atoi(f[i])
				return v
			}
		}
	}
	t.Fatalf("no Icmp OutEchoReps in /proc/net/snmp:\n%s", out)
	return 0
}

// TestPing pings private apps through the agent: the publisher pings the
// real host and only its replies come back. A host the publisher cannot
// reach and an app the policy denies get no reply.
func TestPing(t *testing.T) {
	requireE2E(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("SKIPPED LOUDLY: ping(8) is not installed (scripts/deps.sh installs iputils-ping)")
	}
	l := newLab(t)
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })

	t.Run("app by name through a stub address", func(t *testing.T) {
		before := echoRepliesSent(t, l)
		// -4: the name has an IPv6 stub too (TestIPv6 pings that one).
		n, out := ping(t, l, "-4", "-c", "3", "-i", "0.3", "web.corp.test")
		if n != 3 {
			t.Fatalf("ping web.corp.test: %d replies, want 3:\n%s", n, out)
		}
		t.Logf("ping web.corp.test:\n%s", out)
		if !strings.Contains(out, "from 100.64.") {
			t.Fatalf("replies do not come from the stub address:\n%s", out)
		}
		if sent := echoRepliesSent(t, l) - before; sent < 3 {
			t.Fatalf("the corporate host sent %d echo replies, want 3: the replies were not its own", sent)
		}
		pg := flows(t, l).Pings
		if pg.Answered < 3 || pg.Carried < 3 {
			t.Fatalf("pings %+v, want 3 carried and answered", pg)
		}
	})

	t.Run("app by address", func(t *testing.T) {
		if n, out := ping(t, l, "-c", "2", "-i", "0.3", "10.20.0.10"); n != 2 {
			t.Fatalf("ping 10.20.0.10: %d replies, want 2:\n%s", n, out)
		}
	})

	t.Run("publisher pings with an unprivileged ICMP socket", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(l.dir, "publisher.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "ICMP echo through unprivileged ping sockets") {
			t.Fatal("the publisher's log does not say it pings with unprivileged ping sockets")
		}
	})

	t.Run("app denied by policy gets no reply", func(t *testing.T) {
		refused := flows(t, l).Pings.Refused
		if n, out := ping(t, l, "-c", "2", "-i", "0.3", "secret.corp.test"); n != 0 {
			t.Fatalf("ping secret.corp.test: %d replies, want none:\n%s", n, out)
		}
		if got := flows(t, l).Pings.Refused; got < refused+2 {
			t.Fatalf("refused pings %d -> %d, want 2 more", refused, got)
		}
	})

	t.Run("host the publisher cannot reach gets no reply", func(t *testing.T) {
		// db.pdns.corp.test resolves (through the publisher) to 10.20.0.11;
		// without that address in the corporate network, nothing answers.
		l.must("corp", "ip", "addr", "del", "10.20.0.11/24", "dev", "eth0")
		defer l.must("corp", "ip", "addr", "add", "10.20.0.11/24", "dev", "eth0")
		if n, out := ping(t, l, "-c", "2", "-i", "0.5", "db.pdns.corp.test"); n != 0 {
			t.Fatalf("ping db.pdns.corp.test: %d replies from a host that is gone, want none:\n%s", n, out)
		}
	})

	t.Run("a flood is bounded, counted, and never answered falsely", func(t *testing.T) {
		before := flows(t, l).Pings
		got, out := ping(t, l, "-f", "-c", "500", "-w", "30", "web.corp.test")
		pg := flows(t, l).Pings
		if answered := int(pg.Answered - before.Answered); got > answered {
			t.Fatalf("ping got %d replies to a flood, the host answered %d:\n%s", got, answered, out)
		}
		if seen := pg.Carried + pg.Limited - before.Carried - before.Limited; seen < int64(got) || seen == 0 {
			t.Fatalf("pings %+v after %+v: the flood is not counted", pg, before)
		}
		t.Logf("flood: %d replies; pings %+v", got, pg)
		if n, out := ping(t, l, "-c", "1", "web.corp.test"); n != 1 {
			t.Fatalf("ping after the flood: %d replies, want 1:\n%s", n, out)
		}
	})
}
