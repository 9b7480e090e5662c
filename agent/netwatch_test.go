package agent

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/platform/platformtest"
)

func TestWakeDetector(t *testing.T) {
	w := wakeDetector{period: wakeTick, slack: wakeSlack}
	for _, tc := range []struct {
		name       string
		mono, wall time.Duration
		woke       bool
	}{
		{"on time", wakeTick, wakeTick, false},
		{"a little late", wakeTick + time.Second, wakeTick + time.Second, false},
		{"wall clock slewed", wakeTick, wakeTick + 500*time.Millisecond, false},
		{"stopped for 20 s", 20 * time.Second, 20 * time.Second, true},
		// During a suspend the monotonic clock stands still.
		{"suspended for 60 s", wakeTick, wakeTick + 60*time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if gap, woke := w.judge(tc.mono, tc.wall); woke != tc.woke {
				t.Errorf("woke = %v (gap %v), want %v", woke, gap, tc.woke)
			}
		})
	}

	start := time.Now()
	w = wakeDetector{period: wakeTick, slack: wakeSlack, last: start}
	if _, woke := w.tick(start.Add(wakeTick)); woke {
		t.Error("a tick on time is a wake")
	}
	if gap, woke := w.tick(start.Add(wakeTick + 20*time.Second)); !woke || gap < 15*time.Second {
		t.Errorf("a tick 20 s late: gap %v, woke %v; want a wake", gap, woke)
	}
}

// TestNetworkChangeReconnects: a change the monitor reports makes the tunnel
// connect again.
func TestNetworkChangeReconnects(t *testing.T) {
	cloud := startCloud(t)
	a := newTestAgent(t, cloud, shortTempDir(t))
	mon := platformtest.NewNetMonitor()
	a.cfg.NewNetMonitor = func([]string, *zap.Logger) (platform.NetMonitor, error) { return mon, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	p := partsOf(t, a.Agent)
	waitFor(t, "tunnel up", func() bool { return p.tunnelUp() })
	n := p.l7.Status().Connects
	mon.Change()
	waitFor(t, "a new connection", func() bool { return p.l7.Status().Connects == n+1 && p.tunnelUp() })
	a.Close()
	if !mon.Closed() {
		t.Error("the network monitor was not closed with the agent")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}
