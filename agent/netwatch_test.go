package agent

import (
	"testing"
	"time"
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
