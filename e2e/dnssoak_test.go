//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDNSSoak loads the agent's DNS proxy from 64 sockets in the client
// namespace with private, public (half cached, half unique) and NXDOMAIN names
// (e2e/dnssoak), with e2e/soakdns as the upstream, and requires every answer
// right and in time, and the agent's RSS and goroutines flat after the
// warm-up (the first quarter, at most a minute). The fast form (make e2e)
// runs 20 s at 5,000 queries/s; make soak sets ZT_DNS_SOAK=10m and
// ZT_DNS_SOAK_QPS=20000.
func TestDNSSoak(t *testing.T) {
	requireE2E(t)
	dur := envDuration(t, "ZT_DNS_SOAK", 20*time.Second)
	qps := 5000 // the fast form's rate: make e2e shares the machine with the rest
	if v := os.Getenv("ZT_DNS_SOAK_QPS"); v != "" {
		var err error
		if qps, err = strconv.Atoi(v); err != nil {
			t.Fatalf("ZT_DNS_SOAK_QPS=%q: %v", v, err)
		}
	}
	l := newLab(t)
	// The lab's dnsmasq drops queries at this rate and answers with TTL 0
	// (never cached): the soak's upstream is e2e/soakdns, unless
	// ZT_DNS_SOAK_UPSTREAM=dnsmasq asks for the lab's own, for comparison.
	if os.Getenv("ZT_DNS_SOAK_UPSTREAM") != "dnsmasq" {
		l.script("soak-dns")
	}
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })
	server := agentResolver(t, l) + ":53"
	pid := agentPID(t, l)

	clientBefore, upstreamBefore := udpDrops(t, l, "client"), udpDrops(t, l, "cloud")
	var out, errOut bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", l.ns("client"), l.bin("dnssoak"),
		"-server", server, "-qps", strconv.Itoa(qps), "-duration", dur.String(), "-sockets", "64")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if os.Getenv("ZT_DNS_SOAK_PROFILE") != "" {
		// A CPU profile of the agent from a quarter into the run, 20 s long
		// (the control socket's pprof), and its heap at the end.
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			time.Sleep(dur / 4)
			saveProfile(t, l.sock(), fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(min(20*time.Second, dur/2).Seconds())),
				filepath.Join(l.root, ".lab", "dnssoak-cpu.pprof"))
		}()
	}
	var samples []procSample
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var runErr error
wait:
	for {
		select {
		case runErr = <-exited:
			break wait
		case <-tick.C:
			s, err := sampleAgent(pid, l.sock())
			if err != nil {
				t.Logf("sample: %v", err)
				continue
			}
			s.at = time.Since(start)
			samples = append(samples, s)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	t.Logf("dnssoak -qps %d -duration %v: %s (the load's own CPU: %.1f s)", qps, dur, last,
		(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
	// Queries a kernel dropped (a full socket buffer, when the machine did
	// not schedule a process for a while) count here: the agent's and the
	// load's in the client namespace, the lab's upstream DNS in the cloud.
	clientDrops := udpDrops(t, l, "client") - clientBefore
	upstreamDrops := udpDrops(t, l, "cloud") - upstreamBefore
	var total struct{ sent, ok, bad, lost, servfail, loadDrops int }
	fmt.Sscanf(last, "total sent=%d ok=%d bad=%d lost=%d servfail=%d", &total.sent, &total.ok, &total.bad, &total.lost, &total.servfail)
	if _, d, ok := strings.Cut(last, " drops="); ok {
		total.loadDrops, _ = strconv.Atoi(d)
	}
	listenerDrops := portDrops(t, l, "client", 53)
	t.Logf("UDP receive buffer drops: %d in the client namespace (the agent's listener %d, the load's sockets %d, the rest at the agent's upstream sockets), %d at the upstream DNS",
		clientDrops, listenerDrops, total.loadDrops, upstreamDrops)
	switch {
	case runErr == nil:
	case total.sent > 0 && total.lost <= max(total.loadDrops, 0) && total.bad == total.servfail && total.servfail <= upstreamDrops:
		// Answers the load's own sockets dropped were sent; and the
		// upstream never saw the queries it dropped, for which SERVFAIL
		// is the agent's right answer: the lab's limits, not the agent's.
		t.Logf("%d lost, all answers the load's sockets dropped (%d); %d SERVFAIL, all for queries the lab's upstream DNS dropped (%d drops there)",
			total.lost, total.loadDrops, total.servfail, upstreamDrops)
	default:
		t.Errorf("dnssoak: %v\n%s\n%s", runErr, errOut.String(), strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
	if len(samples) > 0 {
		last := samples[len(samples)-1]
		t.Logf("agent at the end: RSS %.1f MB, %d goroutines, %.1f s CPU", float64(last.rssKB)/1024, last.goroutines, last.cpu.Seconds())
	}
	if os.Getenv("ZT_DNS_SOAK_PROFILE") != "" {
		saveProfile(t, l.sock(), "/debug/pprof/heap", filepath.Join(l.root, ".lab", "dnssoak-heap.pprof"))
	}
	flatAfter(t, samples, min(dur/4, time.Minute), 0.10, 20)
}

// envDuration reads a duration from the environment, or returns def.
func envDuration(t *testing.T, key string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return d
}

// agentResolver is the nameserver the agent wrote into the client's resolv.conf.
func agentResolver(t *testing.T, l *lab) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/etc/netns", l.ns("client"), "resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			return f[1]
		}
	}
	t.Fatalf("no nameserver in the client's resolv.conf:\n%s", b)
	return ""
}

// portDrops sums the drops (/proc/net/udp) of a namespace's UDP sockets bound
// to a local port: the agent's DNS listeners for port 53 in the client.
func portDrops(t *testing.T, l *lab, role string, port uint16) int {
	t.Helper()
	total := 0
	for _, line := range strings.Split(l.must(role, "cat", "/proc/net/udp"), "\n") {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
			continue
		}
		n, _ := strconv.Atoi(f[len(f)-1])
		total += n
	}
	return total
}

// udpDrops is a namespace's UDP RcvbufErrors (/proc/net/snmp): datagrams the
// kernel dropped because a socket's receive buffer was full.
func udpDrops(t *testing.T, l *lab, role string) int {
	t.Helper()
	var head []string
	for _, line := range strings.Split(l.must(role, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, name := range head {
			if name == "RcvbufErrors" && i < len(f) {
				n, _ := strconv.Atoi(f[i])
				return n
			}
		}
	}
	t.Fatalf("no Udp RcvbufErrors in %s's /proc/net/snmp", role)
	return 0
}
