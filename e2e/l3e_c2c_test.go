//go:build linux

package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// TestL3EClientToClient: two laptops, each with its agent, call each other
// through the gateway by VPN address: an RTP-like UDP stream of 50 datagrams
// a second each way for 10 s (loss and jitter logged, loss must stay under
// 1%), and a TCP connection on the softphones' port 5060 by name.
func TestL3EClientToClient(t *testing.T) {
	requireE2E(t)
	tenant, err := filepath.Abs("../testdata/tenants/l3e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := newLabEnv(t, map[string]string{"ZT_TENANT": tenant})
	l.script("gateway-start")
	l.script("agent-start")
	l.secondLaptop()
	sock2 := filepath.Join(l.dir, "agent2.sock")
	// laptop2's agent has its own host name (a UTS namespace of its own),
	// which it registers in the corporate DNS.
	l.background("agent2", "client2", "unshare", "--uts", "--", "sh", "-c", `hostname "$0" && exec "$@"`, "laptop2",
		l.bin("ztagent"), "run", "--state-dir", filepath.Join(l.dir, "agent2"), "--log-dir", filepath.Join(l.dir, "agent2-logs"),
		"--socket", sock2, "host=10.10.0.1:8444", "token=@"+filepath.Join(l.dir, "secrets", "org.key"),
		"upn=bob@demo.test", "cacert="+filepath.Join(l.dir, "cloud", "ca.pem"))
	a := waitL3E(t, l, "client", l.sock())
	b := waitL3E(t, l, "client2", sock2)
	if a == b {
		t.Fatalf("both laptops got %s", a)
	}

	var wg sync.WaitGroup
	outs := make([]string, 2)
	codes := make([]int, 2)
	for i, side := range []struct {
		role      string
		me, other netip.Addr
	}{{"client", a, b}, {"client2", b, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], codes[i] = l.run(side.role, l.bin("labweb"), "-rtp", netip.AddrPortFrom(side.other, 5004).String(),
				"-rtp-local", netip.AddrPortFrom(side.me, 5004).String(), "-rate", "50", "-duration", "10s", "-size", "172")
		}()
	}
	wg.Wait()
	re := regexp.MustCompile(`rtp: sent (\d+) received (\d+) lost (-?\d+) jitter_ms ([\d.]+) max_delay_ms ([\d.]+)`)
	for i, who := range []string{"laptop1 ← laptop2", "laptop2 ← laptop1"} {
		m := re.FindStringSubmatch(outs[i])
		if codes[i] != 0 || m == nil {
			t.Fatalf("%s: exit %d\n%s", who, codes[i], outs[i])
		}
		t.Logf("%s: %s", who, m[0])
		sent, _ := strconv.Atoi(m[1])
		got, _ := strconv.Atoi(m[2])
		if sent != 500 || got < sent*99/100 {
			t.Errorf("%s: %d of %d datagrams arrived", who, got, sent)
		}
	}

	// TCP between the laptops on the softphones' port, by name: laptop1's
	// agent asks the corporate DNS (through L3E) for the name laptop2's
	// agent registered.
	l.background("laptop2-sip", "client2", l.bin("labweb"), "--name", "laptop2",
		"--listen", netip.AddrPortFrom(b, 5060).String())
	url := "http://laptop2.corp.test:5060/"
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, code := l.run("client", "curl", "-sf", "--max-time", "5", url)
		if code == 0 && strings.Contains(out, "laptop2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("laptop1 → laptop2 %s: exit %d\n%s", url, code, out)
		}
	}
}

// secondLaptop adds namespace P-client2 (10.40.0.2) linked to P-cloud
// (10.40.0.1, eth3), with its own resolv.conf, removed at the test's end.
func (l *lab) secondLaptop() {
	t := l.t
	ns, cloud := l.ns("client2"), l.ns("cloud")
	t.Cleanup(func() {
		runHost("ip", "netns", "del", ns) // its veth goes with it
		os.RemoveAll("/etc/netns/" + ns)
	})
	for _, args := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", "eth3", "netns", cloud},
		{"ip", "-n", ns, "addr", "add", "10.40.0.2/24", "dev", "eth0"},
		{"ip", "-n", cloud, "addr", "add", "10.40.0.1/24", "dev", "eth3"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", cloud, "link", "set", "eth3", "up"},
		{"ip", "-n", ns, "route", "add", "default", "via", "10.40.0.1"},
	} {
		if out, err := runHost(args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.MkdirAll("/etc/netns/"+ns, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/etc/netns/"+ns+"/resolv.conf", []byte("nameserver 10.10.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitL3E waits for the agent on sock in role's namespace to have its L3E
// address.
func waitL3E(t *testing.T, l *lab, role, sock string) netip.Addr {
	t.Helper()
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, code := l.run(role, l.bin("ztdiag"), "--socket", sock, "status", "--json")
		var st ctlapi.Status
		if code == 0 && json.Unmarshal([]byte(out), &st) == nil && st.L3E != nil && st.L3E.State == "up" && st.L3E.Address.IsValid() {
			return st.L3E.Address.Addr()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: L3E not up: exit %d\n%s", role, code, out)
		}
	}
}

// runHost runs a command in the host's namespace.
func runHost(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}
