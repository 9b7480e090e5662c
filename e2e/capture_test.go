//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCapture: ztdiag -c start captures a flow to an app through the TUN
// into a root-owned 0600 pcap file that tcpdump reads; -c stop ends it.
func TestCapture(t *testing.T) {
	l, tcpdump, ztdiag := captureLab(t)
	file := filepath.Join(l.dir, "tun.pcap")
	if out := ztdiag("-c", "start", "-o", file, "-s", "128"); !strings.Contains(out, "Capture:: Running since") {
		t.Fatalf("-c start: %s", out)
	}
	if out := ztdiag("-f"); !strings.Contains(out, "Capture:: Running since") || !strings.Contains(out, file) {
		t.Fatalf("-f while capturing:\n%s", out)
	}
	l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")
	dump := stopCapture(t, ztdiag, tcpdump, "-c", "Capture", file, "tcp port 80")
	if n := strings.Count(dump, ".80: Flags [S]"); n < 1 || !strings.Contains(dump, ".80 > ") {
		t.Fatalf("the capture lacks the flow to web.corp.test:80 both ways:\n%s", dump)
	}
}

// TestSpeedTest: ztdiag -g moves its bytes through the lab's PoP to a
// publisher, both ways, and says how fast.
func TestSpeedTest(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })
	for _, dir := range []string{"download", "upload"} {
		var out string
		var code int
		// The first probe round selects the publishers soon after start.
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			out, code = l.run("client", l.bin("ztdiag"), "--socket", l.sock(), "-g", dir, "-s", "20M")
			if code == 0 || time.Now().After(deadline) {
				break
			}
		}
		if code != 0 || !strings.Contains(out, "Speed Test:: "+dir+" 20971520 bytes in ") {
			t.Fatalf("-g %s: exit %d:\n%s", dir, code, out)
		}
		t.Logf("%s", strings.TrimSpace(out))
	}
}

// TestUplinkCapture: ztdiag -p start captures the agent's own connections
// on the uplink (the PoP's TLS, the tenant API's) into a root-owned 0600
// pcap file that tcpdump reads, and leaves out another application's
// connection from the same namespace to the same host (the public web
// server on the PoP's address, port 80, reached direct).
func TestUplinkCapture(t *testing.T) {
	l, tcpdump, ztdiag := captureLab(t)
	file := filepath.Join(l.dir, "uplink.pcap")
	if out := ztdiag("-p", "start", "-o", file, "-s", "256"); !strings.Contains(out, "Uplink Capture:: Running since") || !strings.Contains(out, "on any") {
		t.Fatalf("-p start: %s", out)
	}
	if out := ztdiag("-f"); !strings.Contains(out, "Uplink Capture:: Running since") || !strings.Contains(out, file) || !strings.Contains(out, "Capture:: None") {
		t.Fatalf("-f while capturing:\n%s", out)
	}
	l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/") // through the PoP
	ztdiag("-u")                                                                 // the tenant API
	l.must("client", "curl", "-sS", "-o", "/dev/null", "--max-time", "10", "http://10.10.0.1/")
	d := stopCapture(t, ztdiag, tcpdump, "-p", "Uplink Capture", file)
	for _, want := range []string{"> 10.10.0.1.8443: ", "IP 10.10.0.1.8443 > ", "> 10.10.0.1.8444: ", "IP 10.10.0.1.8444 > "} {
		if !strings.Contains(d, want) {
			t.Errorf("the capture lacks %q (the PoP, the tenant API, both ways)", want)
		}
	}
	for _, never := range []string{"> 10.10.0.1.80: ", "IP 10.10.0.1.80 > "} {
		if strings.Contains(d, never) {
			t.Errorf("the capture holds another application's packet %q", never)
		}
	}
}

// stopCapture stops the capture of flag (-c, -p), checks that its status
// line (label) says it ended and that its file is mode 0600, and returns
// what tcpdump reads from the file (with the filter args, if any).
func stopCapture(t *testing.T, ztdiag func(args ...string) string, tcpdump, flag, label, file string, filter ...string) string {
	t.Helper()
	if out := ztdiag(flag, "stop"); !strings.Contains(out, label+":: Ended (stopped)") {
		t.Fatalf("%s stop: %s", flag, out)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("capture file: %v %v, want mode 0600", fi, err)
	}
	dump, err := exec.Command(tcpdump, append([]string{"-n", "-r", file}, filter...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, dump)
	}
	t.Logf("tcpdump -r (first lines):\n%.1500s", dump)
	return string(dump)
}

// captureLab is how both capture tests start: tcpdump found (or the test
// skipped), a lab with its agent running, and ztdiag run in the client
// namespace.
func captureLab(t *testing.T) (l *lab, tcpdump string, ztdiag func(args ...string) string) {
	t.Helper()
	requireE2E(t)
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("SKIPPED LOUDLY: tcpdump is not installed (scripts/deps.sh installs it)")
	}
	l = newLab(t)
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })
	ztdiag = func(args ...string) string {
		return l.must("client", append([]string{l.bin("ztdiag"), "--socket", l.sock()}, args...)...)
	}
	return l, tcpdump, ztdiag
}
