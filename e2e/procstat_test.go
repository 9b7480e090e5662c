//go:build linux

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procSample is what a running agent costs at one moment.
type procSample struct {
	at         time.Duration // since sampling began
	rssKB      int
	goroutines int
	cpu        time.Duration // user + system, since the process began
}

// sampleAgent reads the agent's RSS and CPU time from /proc and its goroutine
// count from its control socket's pprof (root only).
func sampleAgent(pid int, sock string) (procSample, error) {
	var s procSample
	status, err := procStatusKB(pid)
	if err != nil {
		return s, err
	}
	s.rssKB = status["VmRSS"]
	if s.cpu, err = procCPU(pid); err != nil {
		return s, err
	}
	s.goroutines, err = agentGoroutines(sock)
	return s, err
}

// procStatusKB returns the figures in kB of a process's /proc/PID/status
// (VmRSS, RssAnon, RssFile…), by name without the colon.
func procStatusKB(pid int) (map[string]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	kb := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "kB" {
			kb[strings.TrimSuffix(f[0], ":")], _ = strconv.Atoi(f[1])
		}
	}
	return kb, nil
}

// mapping is one mapping of a process, from /proc/PID/smaps: its address
// range, permissions, file (empty when anonymous) and sizes in kB.
type mapping struct {
	addr, perm, path      string
	sizeKB, rssKB, anonKB int
}

// smaps returns a process's mappings.
func smaps(pid int) ([]mapping, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, err
	}
	var maps []mapping
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && len(f[1]) == 4: // a mapping's first line
			m := mapping{addr: f[0], perm: f[1]}
			if len(f) >= 6 {
				m.path = f[5]
			}
			maps = append(maps, m)
		case len(maps) > 0 && len(f) >= 2:
			n, _ := strconv.Atoi(f[1])
			switch m := &maps[len(maps)-1]; f[0] {
			case "Size:":
				m.sizeKB = n
			case "Rss:":
				m.rssKB = n
			case "Anonymous:":
				m.anonKB = n
			}
		}
	}
	return maps, nil
}

// procCPU is the user and system CPU time of a process.
func procCPU(pid int) (time.Duration, error) {
	user, sys, _, err := procStat(pid)
	return user + sys, err
}

// procStat reads a process's user and system CPU time and minor page faults
// from /proc/PID/stat.
func procStat(pid int) (user, sys time.Duration, minflt int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// Fields after the command (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0, 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	const clockTick = 100 // USER_HZ on Linux
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	minflt, _ = strconv.Atoi(f[7])
	return time.Duration(utime) * time.Second / clockTick, time.Duration(stime) * time.Second / clockTick, minflt, nil
}

// procCost is what a process has spent since it began: CPU time by kind,
// minor page faults, and context switches summed over its threads (each
// voluntary one a wakeup after sleeping).
type procCost struct {
	user, sys   time.Duration
	minflt      int
	vcsw, nvcsw int
}

func readProcCost(pid int) (procCost, error) {
	var c procCost
	var err error
	if c.user, c.sys, c.minflt, err = procStat(pid); err != nil {
		return c, err
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return c, err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			switch k {
			case "voluntary_ctxt_switches":
				c.vcsw += n
			case "nonvoluntary_ctxt_switches":
				c.nvcsw += n
			}
		}
	}
	return c, nil
}

// since shows the cost between an earlier reading b and c.
func (c procCost) since(b procCost) string {
	return fmt.Sprintf("user %.2f s, system %.2f s, %d minor faults, %d voluntary and %d involuntary context switches",
		(c.user - b.user).Seconds(), (c.sys - b.sys).Seconds(), c.minflt-b.minflt, c.vcsw-b.vcsw, c.nvcsw-b.nvcsw)
}

// agentGoroutines reads "goroutine profile: total N" from the control socket.
func agentGoroutines(sock string) (int, error) {
	body, err := ctlGet(sock, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(body), "\n")
	var n int
	if _, err := fmt.Sscanf(line, "goroutine profile: total %d", &n); err != nil {
		return 0, fmt.Errorf("goroutine profile: %q: %w", line, err)
	}
	return n, nil
}

// ctlGet fetches path from the agent's control socket (root only for pprof).
func ctlGet(sock, path string) ([]byte, error) {
	c := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://x" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// flatAfter checks that RSS and goroutines do not grow after warm: the most
// seen after warm may pass the most seen before it by rssSlack (a fraction)
// plus 2 MB, and by goroutineSlack goroutines.
func flatAfter(t *testing.T, samples []procSample, warm time.Duration, rssSlack float64, goroutineSlack int) {
	t.Helper()
	var before, after procSample
	for _, s := range samples {
		m := &after
		if s.at <= warm {
			m = &before
		}
		m.rssKB, m.goroutines = max(m.rssKB, s.rssKB), max(m.goroutines, s.goroutines)
	}
	t.Logf("most before %v: RSS %.1f MB, %d goroutines; after: RSS %.1f MB, %d goroutines",
		warm, float64(before.rssKB)/1024, before.goroutines, float64(after.rssKB)/1024, after.goroutines)
	if before.rssKB == 0 || after.rssKB == 0 {
		t.Fatalf("too few samples (%d) to compare before and after %v", len(samples), warm)
	}
	if float64(after.rssKB) > float64(before.rssKB)*(1+rssSlack)+2048 {
		t.Errorf("RSS grew after %v: %d kB, at most %d kB before", warm, after.rssKB, before.rssKB)
	}
	if after.goroutines > before.goroutines+goroutineSlack {
		t.Errorf("goroutines grew after %v: %d, at most %d before", warm, after.goroutines, before.goroutines)
	}
}
