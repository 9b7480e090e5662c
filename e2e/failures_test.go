//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// TestFailures measures how long the agent's private access is broken by the
// failures of issue 11 ("failures are short"), in one lab: each figure is
// polled for, not slept for, logged, and held to a generous bound.
//
//   - the PoP restarted: tunnel back ≤ 2 s after it listens again, and DNS
//     answers never fail meanwhile;
//   - the publisher restarted: new flows work ≤ 2 s after it started; and
//     the same when the old one hangs instead (SIGSTOP) with its connection
//     still open, so the new connection must win over the old;
//   - the agent stopped (SIGSTOP) and continued, as a laptop sleeps and wakes,
//     with the old connection's path dead (the PoP's packets to it are
//     dropped, as by a NAT that forgot it): flows work ≤ 5 s after it
//     continues. The stop lasts 20 s here (ZT_WAKE_STOP, a duration, changes
//     it; `make soak` uses 60 s);
//   - the client's default route moved to a second uplink: flows work ≤ 3 s
//     after the move.
func TestFailures(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })
	wantFlow(t, l)

	t.Run("PoP restarted", func(t *testing.T) {
		dns := watchDNS(t, l)
		l.script("cloud-stop")
		poll(t, l, "the agent notices the PoP is gone", 10*time.Second, func() bool { return tunnelState(t, l) != "connected" })
		l.script("cloud-start")
		poll(t, l, "the PoP listens", 20*time.Second, func() bool { return popListening(l) })
		back := poll(t, l, "tunnel back", 10*time.Second, func() bool { return tunnelState(t, l) == "connected" })
		usable := back + poll(t, l, "a flow through the tunnel", 10*time.Second, func() bool { return flowWorks(l) })
		t.Logf("PoP restarted: tunnel back %v after the PoP listened again; a flow worked after %v", ms(back), ms(usable))
		if back > 2*time.Second {
			t.Errorf("tunnel back %v after the PoP listened again, want ≤ 2 s", back)
		}
		n, failures := dns.stop()
		t.Logf("PoP restarted: %d DNS queries during the outage, %d failed", n, len(failures))
		if len(failures) > 0 {
			t.Errorf("DNS answers failed during the PoP's restart:\n%s", strings.Join(failures, "\n"))
		}
	})

	t.Run("publisher restarted", func(t *testing.T) {
		l.script("publisher-stop")
		poll(t, l, "flows refused without the publisher", 10*time.Second, func() bool { return !flowWorks(l) })
		took := restartPublisher(t, l)
		t.Logf("publisher restarted: new flows work %v after it started", ms(took))
		if took > 2*time.Second {
			t.Errorf("new flows work %v after the publisher started, want ≤ 2 s", took)
		}
	})

	t.Run("publisher replaced while the old one hangs", func(t *testing.T) {
		// The old publisher stops answering without closing its connection
		// (a frozen host): the PoP has not noticed when the new one dials in.
		old := pidOf(t, l, "publisher")
		if err := syscall.Kill(old, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer func() {
			syscall.Kill(old, syscall.SIGKILL)
			syscall.Kill(old, syscall.SIGCONT)
		}()
		took := restartPublisher(t, l)
		t.Logf("publisher replaced while the old one hangs: new flows work %v after the new one started", ms(took))
		if took > 2*time.Second {
			t.Errorf("new flows work %v after the new publisher started, want ≤ 2 s", took)
		}
	})

	t.Run("agent stopped and continued (sleep and wake)", func(t *testing.T) {
		stopFor := 20 * time.Second
		if s := os.Getenv("ZT_WAKE_STOP"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("ZT_WAKE_STOP=%q: %v", s, err)
			}
			stopFor = d
		}
		pid := pidOf(t, l, "agent")
		port := tunnelPort(t, l)
		// The PoP's packets to the old connection are dropped from now on: on
		// waking, the agent hears nothing on it, not even a reset.
		rule := []string{"ip", "rule", "add", "priority", "5", "to", "10.10.0.2", "ipproto", "tcp",
			"sport", "8443", "dport", strconv.Itoa(port), "blackhole"}
		l.must("cloud", rule...)
		defer l.must("cloud", append([]string{"ip", "rule", "del"}, rule[3:]...)...)
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(stopFor) // the scenario: the agent is away this long
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		took := poll(t, l, "a flow after the wake", 20*time.Second, func() bool { return flowWorks(l) })
		t.Logf("agent stopped %v and continued: flows work %v after it continued", stopFor, ms(took))
		if took > 5*time.Second {
			t.Errorf("flows work %v after the agent continued, want ≤ 5 s", took)
		}
		// The dead connection is closed once its check fails.
		poll(t, l, "the dead connection closed", 10*time.Second, func() bool {
			out, _ := l.run("client", "ss", "-Htn", "state", "established", "( dport = :8443 )")
			return !strings.Contains(out, ":"+strconv.Itoa(port)+" ")
		})
	})

	t.Run("default route moved to a second uplink", func(t *testing.T) {
		l.script("second-uplink")
		poll(t, l, "tunnel up with the second uplink", 10*time.Second, func() bool { return tunnelState(t, l) == "connected" && flowWorks(l) })
		// The first uplink goes away (its address with it, and the default
		// route through it); the default route now leaves by the second.
		// The old connection's replies go to an address the client no
		// longer has.
		l.must("client", "ip", "addr", "del", "10.10.0.2/24", "dev", "eth0")
		l.must("client", "ip", "route", "replace", "default", "via", "10.30.0.1", "dev", "eth1")
		start := time.Now()
		back := poll(t, l, "tunnel by the second uplink", 20*time.Second, func() bool {
			out, _ := l.run("client", "ss", "-Htn", "state", "established", "src", "10.30.0.2", "dport", "= :8443")
			return strings.Contains(out, "10.30.0.2:") && tunnelState(t, l) == "connected"
		})
		// A flow opened on the old connection before the agent heard of the
		// move waits for the old connection's check to fail (up to 2 s).
		poll(t, l, "a flow by the second uplink", 20*time.Second, func() bool { return flowWorks(l) })
		usable := time.Since(start)
		t.Logf("default route moved: tunnel back by the second uplink %v after the move; a flow worked after %v", ms(back), ms(usable))
		if back > 3*time.Second || usable > 3*time.Second {
			t.Errorf("tunnel back %v and flows working %v after the default route moved, want both ≤ 3 s", back, usable)
		}
	})
}

// restartPublisher starts the publisher and returns how long after it
// started a new flow worked. Flows are tried once it has connected to the
// PoP (its own log says so; lab.sh starts each log afresh): one opened before
// may go to the old publisher, and hang if that one does.
func restartPublisher(t *testing.T, l *lab) time.Duration {
	t.Helper()
	start := time.Now()
	l.script("publisher-start")
	poll(t, l, "the new publisher connected to the PoP", 10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(l.dir, "publisher.log"))
		return strings.Contains(string(b), "connected to PoP")
	})
	// A flow the PoP sends in the few milliseconds before it has registered
	// the new connection still goes to the old one (which, hung, never
	// answers): such an attempt is given up after a second, not two.
	poll(t, l, "a flow through the new publisher", 10*time.Second, func() bool { return flowWorksWithin(l, "1") })
	return time.Since(start)
}

// poll calls cond every 20 ms until it holds and returns how long that took;
// past limit the test fails.
func poll(t *testing.T, l *lab, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			l.dumpLogs()
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// wantFlow fails the test unless a flow to the private web app works.
func wantFlow(t *testing.T, l *lab) {
	t.Helper()
	page := l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")
	wantPage(t, page, "hello from corp web")
}

// flowWorks reports whether a request to the private web app through the
// agent gets the page within 2 s.
func flowWorks(l *lab) bool { return flowWorksWithin(l, "2") }

// flowWorksWithin is flowWorks within secs seconds.
func flowWorksWithin(l *lab, secs string) bool {
	out, code := l.run("client", "curl", "-sS", "--max-time", secs, "http://web.corp.test/")
	return code == 0 && strings.Contains(out, "hello from corp web")
}

func tunnelState(t *testing.T, l *lab) string {
	t.Helper()
	out, code := l.run("client", l.bin("ztdiag"), "--socket", l.sock(), "status", "--json")
	if code != 0 {
		return "no status: " + out
	}
	var st ctlapi.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st.Tunnel.State
}

// popListening reports whether something listens on the PoP's port.
func popListening(l *lab) bool {
	out, code := l.run("cloud", "ss", "-Hltn", "sport = :8443")
	return code == 0 && strings.Contains(out, ":8443")
}

// tunnelPort returns the client's port of the agent's one connection to the
// PoP.
func tunnelPort(t *testing.T, l *lab) int {
	t.Helper()
	out := strings.TrimSpace(l.must("client", "ss", "-Htn", "state", "established", "( dport = :8443 )"))
	lines := strings.Split(out, "\n")
	if out == "" || len(lines) != 1 {
		t.Fatalf("want one connection to the PoP, have:\n%s", out)
	}
	f := strings.Fields(lines[0])
	if len(f) < 4 {
		t.Fatalf("ss: %q", lines[0])
	}
	ap, err := netip.ParseAddrPort(f[len(f)-2])
	if err != nil {
		t.Fatalf("ss: %q: %v", lines[0], err)
	}
	return int(ap.Port())
}

// dnsWatch asks the agent for a public and a private name over and over, and
// records every query that gets no answer, or an answer the fail mode does
// not allow.
type dnsWatch struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	n     int
	fails []string
}

// watchDNS starts asking. Public names must resolve as they do directly. A
// private name (the lab's tenant fails open) must get either its stub or,
// while the tunnel is down, what the OS's resolver answers for it directly.
func watchDNS(t *testing.T, l *lab) *dnsWatch {
	t.Helper()
	direct := digFull(t, l, "web.corp.test", "A", "@10.10.0.1")
	directStatus, directN, _ := digResult(t, direct)
	stubs := netip.MustParsePrefix("100.64.0.0/10")
	w := &dnsWatch{stopc: make(chan struct{})}
	check := func(name, out string, code int) string {
		if code != 0 {
			return fmt.Sprintf("%s: dig exit %d: %s", name, code, strings.TrimSpace(out))
		}
		status, n, recs := digResultQuiet(out)
		switch {
		case name == "www.public.test":
			if status != "NOERROR" || n != 1 || !strings.HasSuffix(recs[0], " 10.10.0.1") {
				return fmt.Sprintf("%s: %s %v", name, status, recs)
			}
		case status == directStatus && n == directN && n == 0:
			// The OS's resolver's answer: fail-open while the tunnel is down.
		case status == "NOERROR" && n == 1:
			f := strings.Fields(recs[0])
			if a, err := netip.ParseAddr(f[len(f)-1]); err != nil || !stubs.Contains(a) {
				return fmt.Sprintf("%s: %v, not a stub", name, recs)
			}
		default:
			return fmt.Sprintf("%s: %s with %d answers", name, status, n)
		}
		return ""
	}
	w.wg.Go(func() {
		for {
			for _, name := range []string{"www.public.test", "web.corp.test"} {
				select {
				case <-w.stopc:
					return
				default:
				}
				out, code := l.run("client", "dig", "+time=1", "+tries=1", name, "A")
				msg := check(name, out, code)
				w.mu.Lock()
				w.n++
				if msg != "" {
					w.fails = append(w.fails, time.Now().Format("15:04:05.000 ")+msg)
				}
				w.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return w
}

// stop ends the watch and returns the number of queries and the failures.
func (w *dnsWatch) stop() (int, []string) {
	close(w.stopc)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.fails
}

// noAnswer is digResultQuiet's status for output that is no DNS answer.
const noAnswer = "NO-ANSWER"

// digResultQuiet is digResult for a goroutine: output that is no answer is
// the status noAnswer rather than a fatal error.
func digResultQuiet(out string) (status string, answers int, records []string) {
	m := digStatus.FindStringSubmatch(out)
	n := digAnswers.FindStringSubmatch(out)
	if m == nil || n == nil {
		return noAnswer, 0, nil
	}
	answers, _ = strconv.Atoi(n[1])
	inAnswer := false
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			inAnswer = true
		case line == "" || strings.HasPrefix(line, ";"):
			inAnswer = false
		case inAnswer:
			f := strings.Fields(line)
			if len(f) > 2 {
				records = append(records, f[0]+" "+strings.Join(f[2:], " "))
			}
		}
	}
	return m[1], answers, records
}
