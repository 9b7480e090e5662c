package steering

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
)

// e2eConfig is the steering config the agent receives in e2e's TestIdleRSS10k
// (e2e/idlerss_test.go, tenant10k): n apps of five hosts each (two names, a
// wildcard, a CIDR — IPv6 for one app in ten — and a range), TCP 443, one
// publisher.
func e2eConfig(n int) *Config {
	c := &Config{Apps: make([]App, n)}
	for i := range c.Apps {
		a, b := 16+i/4096, (i/16)%256
		host := fmt.Sprintf("172.%d.%d.%d", a, b, (i%16)*16)
		cidr := host + "/29"
		if i%10 == 0 {
			cidr = fmt.Sprintf("fd00:%x:%x::/48", i/256, i%256)
		}
		c.Apps[i] = App{
			ID: fmt.Sprintf("app-%05d", i),
			Hosts: []string{
				fmt.Sprintf("svc%d.dept%d.corp.example", i, i%97),
				fmt.Sprintf("api-%d.internal.example", i),
				fmt.Sprintf("*.app%d.corp.example", i),
				cidr,
				fmt.Sprintf("%s-172.%d.%d.%d", fmt.Sprintf("172.%d.%d.%d", a, b, (i%16)*16+8), a, b, (i%16)*16+12),
			},
			TCP:        "443",
			Publishers: []string{"pub1"},
		}
	}
	return c
}

// liveHeap returns the live heap after a full GC.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestSnapshotHeap10k reports the live heap of the 10,000-app config the e2e
// test's agent holds, as the agent gets it (JSON decoded, then compiled), and
// bounds it. ZT_HEAP_PROFILE=file writes an inuse heap profile of it.
func TestSnapshotHeap10k(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles 10,000 apps")
	}
	data, err := json.Marshal(e2eConfig(10000))
	if err != nil {
		t.Fatal(err)
	}
	if f := os.Getenv("ZT_HEAP_PROFILE"); f != "" {
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	base := liveHeap()
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	decoded := liveHeap()
	s, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	c = nil
	snap := liveHeap()
	mb := func(n uint64) float64 { return float64(n) / (1 << 20) }
	t.Logf("10,000 apps: decoded config %.2f MB, snapshot alone (config dropped) %.2f MB", mb(decoded-base), mb(snap-base))
	// 10.7 MB before the snapshot was made compact, 5.3 MB after.
	if limit := uint64(7 << 20); snap-base > limit && !raceEnabled {
		t.Errorf("the snapshot of 10,000 apps holds %.2f MB, want ≤ %.2f MB", mb(snap-base), mb(limit))
	}
	if f := os.Getenv("ZT_HEAP_PROFILE"); f != "" {
		w, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(w, 0); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	runtime.KeepAlive(s)
	runtime.KeepAlive(c)
}
