//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rssGoalKB is issue 15's goal for the idle agent with 10,000 apps. The
// release build reaches it (23.8–24.3 MB in four runs, 2026-11-30 18:08–18:14,
// with the runtime patch of scripts/go-overlay.sh; 25.1–31.6 MB without it,
// the free heap the runtime's scavenger hid making the spread). `make bench`
// checks it (ZT_IDLE_RSS_GOAL=1, three runs); under `make test` the test
// guards against regressions with rssGuardKB, a margin for machines whose
// kernel maps more of the binary (README, "Idle and offline cost").
const (
	rssGoalKB  = 25 * 1024
	rssGuardKB = 27 * 1024
)

// TestIdleRSS10k measures the idle agent, connected, with 10,000 apps of
// 50,000 host patterns (like the steering benchmark's: two names, a wildcard,
// a CIDR and a range each, in 172.16.0.0/12 and fd00::/8, away from the lab's
// own networks) added to the demo tenant, and keeps a heap profile of it in
// .lab/heap-10k.pprof.
func TestIdleRSS10k(t *testing.T) {
	requireE2E(t)
	tenant := filepath.Join(t.TempDir(), "tenant-10k.yaml")
	if err := os.WriteFile(tenant, []byte(tenant10k(t, 10000)), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLabEnv(t, map[string]string{"ZT_TENANT": tenant})
	// ZT_AGENT_GOMEMLIMIT gives the agent alone a soft memory limit (Go's
	// GOMEMLIMIT), to measure that trade-off (README).
	// ZT_AGENT_GODEBUG=memprofilerate=1 makes the heap profile exact
	// instead of sampled (the agent slower to start).
	// The runtime patch of scripts/go-overlay.sh decides whether free heap
	// stays resident after a trim: say which build this is.
	if v, err := exec.Command(l.bin("ztagent"), "version").Output(); err == nil {
		t.Logf("%s", bytes.TrimSpace(v))
	}
	env := map[string]string{}
	for _, k := range []string{"GOMEMLIMIT", "GODEBUG"} {
		if v := os.Getenv("ZT_AGENT_" + k); v != "" {
			env[k] = v
			t.Logf("agent with %s=%s", k, v)
		}
	}
	if out, err := l.scriptOut(env, "agent-start"); err != nil { // returns once the tunnel is up
		t.Fatalf("lab.sh agent-start: %v\n%s", err, out)
	}
	t.Cleanup(func() { l.script("agent-stop") })
	pid := agentPID(t, l)
	cpu0, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// ZT_IDLE_ALLOCS=1 measures what the agent allocates while idle: its
	// allocation count and a heap profile at the start (compare with
	// pprof -base); the reads make garbage of their own, so the RSS
	// measured is then not the idle agent's alone.
	var alloc0 uint64
	if os.Getenv("ZT_IDLE_ALLOCS") != "" {
		alloc0 = memStat(l.sock(), "TotalAlloc")
		saveProfile(t, l.sock(), "/debug/pprof/heap", filepath.Join(l.root, ".lab", "heap-10k-start.pprof"))
	}
	// Idle: nothing asks the agent anything (a status of 10,000 apps is
	// megabytes of JSON, whose garbage would be measured too).
	// RSS every 5 s through the idle (from /proc alone, which the agent does
	// not see): the garbage it makes, and the trims.
	var series []string
	for range 6 {
		time.Sleep(5 * time.Second)
		series = append(series, rssAnon(pid))
	}
	t.Logf("anonymous RSS every 5 s while idle: %s", strings.Join(series, ", "))
	s, err := sampleAgent(pid, l.sock())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle with 10,000 apps: RSS %.1f MB (%s), %d goroutines, %.2f s CPU in the 30 s idle",
		float64(s.rssKB)/1024, rssParts(pid), s.goroutines, (s.cpu - cpu0).Seconds())
	t.Logf("anonymous mappings, largest first: %s", anonMappings(pid, 6))
	// The runtime's figures first: the profile below makes garbage.
	if stats, err := ctlGet(l.sock(), "/debug/pprof/heap?debug=1"); err == nil {
		var lines []string
		for _, line := range strings.Split(string(stats), "\n") {
			for _, k := range []string{"HeapAlloc", "HeapInuse", "HeapIdle", "HeapReleased", "Sys", "Stack", "MSpan", "GCSys", "BuckHashSys", "OtherSys", "NextGC", "NumGC"} {
				if strings.HasPrefix(line, "# "+k+" ") {
					lines = append(lines, strings.TrimPrefix(line, "# "))
				}
			}
		}
		t.Logf("runtime: %s", strings.Join(lines, "; "))
	}
	// Kept beside the labs' directories: the next test's lab replaces this one's.
	saveProfile(t, l.sock(), "/debug/pprof/heap", filepath.Join(l.root, ".lab", "heap-10k.pprof"))
	// The live heap: a collection first (after the figures above).
	if b, err := ctlGet(l.sock(), "/debug/pprof/heap?gc=1&debug=1"); err == nil {
		_, alloc, _ := strings.Cut(string(b), "# HeapAlloc = ")
		_, inuse, _ := strings.Cut(string(b), "# HeapInuse = ")
		if alloc != "" && inuse != "" {
			t.Logf("after a collection: live heap %s bytes, in spans of %s bytes", strings.Fields(alloc)[0], strings.Fields(inuse)[0])
		}
	}
	// What the idle agent allocates (the garbage the 30 s trim returns).
	if a0, a1 := alloc0, memStat(l.sock(), "TotalAlloc"); a0 > 0 && a1 > a0 {
		t.Logf("allocated while idle: %.0f kB/s (the status reads included)", float64(a1-a0)/1024/30)
	}
	// The agent's log beside the profile (with ZT_AGENT_GODEBUG=gctrace=1,
	// the heap at each collection since the start).
	if b, err := os.ReadFile(filepath.Join(l.dir, "agent.log")); err == nil {
		os.WriteFile(filepath.Join(l.root, ".lab", "agent-10k.log"), b, 0o644)
	}
	limit := rssGuardKB
	if os.Getenv("ZT_IDLE_RSS_GOAL") != "" {
		limit = rssGoalKB
	}
	if s.rssKB > limit {
		t.Errorf("idle RSS with 10,000 apps %d kB, want ≤ %d kB", s.rssKB, limit)
	}
}

// rssParts returns the anonymous and file-backed parts of a process's RSS
// (the heap and the runtime's memory, against the binary's mapped pages).
func rssParts(pid int) string {
	kb, err := procStatusKB(pid)
	if err != nil {
		return err.Error()
	}
	parts := []string{fmt.Sprintf("RssAnon: %d kB", kb["RssAnon"]), fmt.Sprintf("RssFile: %d kB", kb["RssFile"])}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		parts = append(parts, "of the binary "+binaryRSS(pid, exe))
	}
	return strings.Join(parts, ", ")
}

// binaryRSS returns the resident kB of each mapping of the executable exe in
// a process (code, read-only data with the function tables, data). The
// kernel maps up to 64 kB of cached file around each page a process touches,
// so these are most of the segments' sizes.
func binaryRSS(pid int, exe string) string {
	maps, err := smaps(pid)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, m := range maps {
		if m.path == exe {
			out = append(out, fmt.Sprintf("%s %d kB", m.perm, m.rssKB))
		}
	}
	return strings.Join(out, ", ")
}

// tenant10k is the demo tenant with n more apps, steered to and allowed for
// everyone in the engineering profile.
func tenant10k(t *testing.T, n int) string {
	t.Helper()
	b, err := os.ReadFile("../testdata/tenants/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var apps, ids strings.Builder
	for i := range n {
		a, c := 16+i/4096, (i/16)%256
		host := fmt.Sprintf("172.%d.%d.%d", a, c, (i%16)*16)
		cidr := host + "/29"
		if i%10 == 0 {
			cidr = fmt.Sprintf("fd00:%x:%x::/48", i/256, i%256)
		}
		fmt.Fprintf(&apps, "  - id: app-%05d\n    hosts: [svc%d.dept%d.corp.example, api-%d.internal.example, \"*.app%d.corp.example\", \"%s\", %s-172.%d.%d.%d]\n    tcp: \"443\"\n    publishers: [pub1]\n",
			i, i, i%97, i, i, cidr, fmt.Sprintf("172.%d.%d.%d", a, c, (i%16)*16+8), a, c, (i%16)*16+12)
		fmt.Fprintf(&ids, ", app-%05d", i)
	}
	s := string(b)
	s = strings.Replace(s, "apps:\n", "apps:\n"+apps.String(), 1)
	s = strings.Replace(s, "apps: [web, wild, ipapp, iperf, pdns, corpdns, udpecho, secret]",
		"apps: [web, wild, ipapp, iperf, pdns, corpdns, udpecho, secret"+ids.String()+"]", 1)
	s = strings.Replace(s, "    apps: [web, wild, ipapp, iperf, pdns, corpdns, udpecho]\n    action: allow",
		"    apps: [web, wild, ipapp, iperf, pdns, corpdns, udpecho"+ids.String()+"]\n    action: allow", 1)
	return s
}

// saveProfile writes a pprof profile from the agent's control socket to file.
func saveProfile(t *testing.T, sock, path, file string) {
	t.Helper()
	body, err := ctlGet(sock, path)
	if err != nil {
		t.Logf("profile %s: %v", path, err)
		return
	}
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("profile of the agent (%s) in %s", path, file)
}

// memStat returns one runtime.MemStats figure of the agent, from its heap
// profile's text form (0 when it cannot).
func memStat(sock, name string) uint64 {
	b, err := ctlGet(sock, "/debug/pprof/heap?debug=1")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "# "+name+" = "); ok {
			n, _ := strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// anonMappings returns the n anonymous mappings of a process with the most
// resident memory (the Go heap's arenas, the runtime's off-heap memory,
// buffers mapped by libraries).
func anonMappings(pid, n int) string {
	maps, err := smaps(pid)
	if err != nil {
		return err.Error()
	}
	slices.SortFunc(maps, func(a, b mapping) int { return b.anonKB - a.anonKB })
	var out []string
	for _, m := range maps[:min(n, len(maps))] {
		out = append(out, fmt.Sprintf("%s %d of %d kB", m.addr, m.anonKB, m.sizeKB))
	}
	return strings.Join(out, ", ")
}

// rssAnon returns a process's anonymous resident memory in MB.
func rssAnon(pid int) string {
	kb, err := procStatusKB(pid)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%.1f", float64(kb["RssAnon"])/1024)
}
