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

// heapNow returns the live heap and its object count after a full GC.
func heapNow() (bytes, objects uint64) {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.HeapObjects
}

// heap10k decodes and compiles the e2e test's config of n apps as the agent
// gets it (JSON) and returns the live heap and objects the snapshot holds
// once the JSON and the decoded config are gone.
func heap10k(tb testing.TB, n int) (bytes, objects uint64, s *Snapshot) {
	tb.Helper()
	compile := func() *Snapshot {
		data, err := json.Marshal(e2eConfig(n))
		if err != nil {
			tb.Fatal(err)
		}
		c, err := ParseConfig(data)
		if err != nil {
			tb.Fatal(err)
		}
		s, err := Compile(c)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	b0, o0 := heapNow()
	s = compile()
	b1, o1 := heapNow()
	return b1 - b0, o1 - o0, s
}

// snapshotLimit bounds the live heap of the 10,000-app snapshot: 3.06 MB in
// 309 objects (64 bytes per host pattern) on 2026-11-30 at 17:40 UTC, after
// the apps were kept in compact records (compiledApp, appMeta) and the hosts
// as places in their packed text instead of a copy of the config's apps; 4.70 MB (98
// bytes) at 15:45 UTC, of which 3.58 were that copy (160 bytes an App, 16 a
// host, 1.2 MB of strings), after the address tables were kept in their
// family's size, rules cut to their app and the name tables to slots; 7.56
// MB (159 bytes) that morning, 8.94 MB in 90,400 objects before the config
// was made compact and the apps' port sets shared.
const snapshotLimit = 32 << 20 / 10

// TestSnapshotHeap10k reports the live heap of the 10,000-app config the e2e
// test's agent holds, as the agent gets it (JSON decoded, then compiled), and
// bounds it. ZT_HEAP_PROFILE=file writes an inuse heap profile of it.
func TestSnapshotHeap10k(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles 10,000 apps")
	}
	if f := os.Getenv("ZT_HEAP_PROFILE"); f != "" {
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	bytes, objects, s := heap10k(t, 10000)
	mb := float64(bytes) / (1 << 20)
	t.Logf("10,000 apps (50,000 host patterns): the snapshot holds %.2f MB in %d objects, %.0f bytes per pattern",
		mb, objects, float64(bytes)/50000)
	if bytes > snapshotLimit && !raceEnabled {
		t.Errorf("the snapshot of 10,000 apps holds %.2f MB, want ≤ %.2f MB", mb, float64(snapshotLimit)/(1<<20))
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
}

// BenchmarkSnapshotBytes reports the live heap a compiled snapshot of the
// e2e test's config holds per host pattern and per app, and its objects (a
// heap of many small objects fragments: the agent's resident memory is the
// heap in use, beyond the live bytes).
func BenchmarkSnapshotBytes(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			var bytes, objects uint64
			for range b.N {
				var s *Snapshot
				bytes, objects, s = heap10k(b, n)
				runtime.KeepAlive(s)
			}
			b.ReportMetric(float64(bytes)/float64(5*n), "B/pattern")
			b.ReportMetric(float64(bytes)/float64(n), "B/app")
			b.ReportMetric(float64(objects)/float64(n), "objects/app")
		})
	}
}
