//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// TestOfflineCost measures what the agent spends while it cannot reach the
// PoP (issue 15): with the client's uplink down, and then with the PoP
// stopped (cloud-stop), it counts the tunnel's connection attempts and the
// agent's CPU time, and requires the attempts to stay within what the backoff
// allows (delays doubling from ½ s up to 30 s without a network, up to 1.5 s
// when refused, each at least half its ceiling) and the CPU under 1 s. The
// fast form (make e2e) is offline 30 s; make soak sets ZT_OFFLINE=5m. It also
// logs the idle RSS with the demo tenant.
func TestOfflineCost(t *testing.T) {
	requireE2E(t)
	offline := envDuration(t, "ZT_OFFLINE", 30*time.Second)
	l := newLab(t)
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })
	poll(t, l, "the tunnel up", 10*time.Second, func() bool { return tunnelState(t, l) == "connected" })
	pid := agentPID(t, l)
	time.Sleep(5 * time.Second) // idle
	if s, err := sampleAgent(pid, l.sock()); err == nil {
		t.Logf("idle with the demo tenant: RSS %.1f MB, %d goroutines", float64(s.rssKB)/1024, s.goroutines)
	}

	t.Run("uplink down", func(t *testing.T) {
		attempts, cpu := offlineFor(t, l, pid, offline,
			func() { l.must("client", "ip", "link", "set", "eth0", "down") },
			func() {
				l.must("client", "ip", "link", "set", "eth0", "up")
				l.must("client", "ip", "route", "replace", "default", "via", "10.10.0.1")
			})
		// Up to 4 more for the network changes (link and routes), each
		// of which reconnects at once.
		limit := maxAttempts(offline, 500*time.Millisecond, 30*time.Second) + 4
		t.Logf("uplink down %v: %d connection attempts (at most %d allowed), %.2f s CPU", offline, attempts, limit, cpu.Seconds())
		if attempts > limit {
			t.Errorf("%d attempts in %v offline, the backoff allows %d", attempts, offline, limit)
		}
		if cpu > time.Second {
			t.Errorf("%.2f s CPU in %v offline, want under 1 s", cpu.Seconds(), offline)
		}
	})

	t.Run("PoP stopped", func(t *testing.T) {
		attempts, cpu := offlineFor(t, l, pid, offline,
			func() { l.script("cloud-stop") },
			func() { l.script("cloud-start") })
		limit := maxAttempts(offline, 500*time.Millisecond, 1500*time.Millisecond) + 1
		t.Logf("PoP stopped %v: %d connection attempts (at most %d allowed), %.2f s CPU", offline, attempts, limit, cpu.Seconds())
		if attempts > limit {
			t.Errorf("%d attempts in %v with the PoP stopped, the backoff allows %d", attempts, offline, limit)
		}
		if cpu > time.Second {
			t.Errorf("%.2f s CPU in %v with the PoP stopped, want under 1 s", cpu.Seconds(), offline)
		}
	})
}

// offlineFor takes the agent offline with down, waits d without asking it
// anything (asking costs it CPU), and brings it back with up; it returns the
// connection attempts and the CPU time of those d, and waits for the tunnel.
func offlineFor(t *testing.T, l *lab, pid int, d time.Duration, down, up func()) (uint64, time.Duration) {
	t.Helper()
	before := tunnelStatus(t, l).Attempts
	gc0 := memStat(l.sock(), "NumGC")
	down()
	cost0, err := readProcCost(pid)
	if err != nil {
		t.Fatal(err)
	}
	// ZT_OFFLINE_TRACE=1 saves a runtime trace of the offline agent's last
	// 25 s (or half) in .lab/offline-trace.out, to see what wakes it; the
	// trace costs the agent CPU of its own, so the figures are then not its
	// alone.
	traced := make(chan struct{})
	if os.Getenv("ZT_OFFLINE_TRACE") != "" {
		span := min(25*time.Second, d/2) // within ctlGet's timeout
		go func() {
			defer close(traced)
			time.Sleep(d - span)
			saveProfile(t, l.sock(), fmt.Sprintf("/debug/pprof/trace?seconds=%d", int(span.Seconds())),
				filepath.Join(l.root, ".lab", "offline-trace.out"))
		}()
	} else {
		close(traced)
	}
	time.Sleep(d)
	<-traced
	cost1, err := readProcCost(pid)
	if err != nil {
		t.Fatal(err)
	}
	after := tunnelStatus(t, l).Attempts
	t.Logf("offline %v: %s, %d collections", d, cost1.since(cost0), memStat(l.sock(), "NumGC")-gc0)
	up()
	back := poll(t, l, "the tunnel back", 40*time.Second, func() bool { return tunnelState(t, l) == "connected" })
	t.Logf("tunnel back %v after the way to the PoP was", ms(back))
	return after - before, cost1.user + cost1.sys - cost0.user - cost0.sys
}

// maxAttempts is the most attempts a backoff from lo up to hi can make in d
// (each delay at least half its ceiling), counting the first.
func maxAttempts(d, lo, hi time.Duration) uint64 {
	n, ceiling := uint64(1), lo
	for spent := time.Duration(0); ; n++ {
		spent += ceiling / 2
		if spent > d {
			return n
		}
		ceiling = min(2*ceiling, hi)
	}
}

func tunnelStatus(t *testing.T, l *lab) ctlapi.TunnelStatus {
	t.Helper()
	out := l.must("client", l.bin("ztdiag"), "--socket", l.sock(), "status", "--json")
	var st ctlapi.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st.Tunnel
}
