//go:build linux

package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUDP carries UDP apps through the agent, PoP and publisher: the
// corporate resolver answers dig by name (dns.corp.test, a stub) and by
// address; 1,400-byte datagrams pass both ways through a UDP echo, each
// whole; and DNS over UDP from a certificate-pinned process goes direct.
func TestUDP(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })

	t.Run("dig @dns.corp.test gets the corporate resolver's answer", func(t *testing.T) {
		if addr := dig(t, l, "dns.corp.test"); !netip.MustParsePrefix("100.64.0.0/10").Contains(addr) {
			t.Fatalf("dns.corp.test = %s, want a stub address", addr)
		}
		before := flows(t, l)
		// The agent's own proxy would answer a corp name with a stub; the
		// corporate dnsmasq answers every *.corp.test with 10.20.0.10.
		out := strings.TrimSpace(l.must("client", "dig", "@dns.corp.test", "+short", "+time=5", "+tries=1", "anything.corp.test", "A"))
		if out != "10.20.0.10" {
			t.Fatalf("dig @dns.corp.test anything.corp.test = %q, want 10.20.0.10 from the corporate resolver", out)
		}
		if after := flows(t, l); after.Steered <= before.Steered {
			t.Fatalf("flows before %+v, after %+v: the query was not steered", before, after)
		}
	})

	t.Run("dig @10.20.0.10: UDP app by address", func(t *testing.T) {
		out := strings.TrimSpace(l.must("client", "dig", "@10.20.0.10", "+short", "+time=5", "+tries=1", "db.pdns.corp.test", "A"))
		if out != "10.20.0.11" {
			t.Fatalf("dig @10.20.0.10 db.pdns.corp.test = %q, want 10.20.0.11", out)
		}
	})

	t.Run("1400-byte datagrams both ways, boundaries kept", func(t *testing.T) {
		out := l.must("client", l.bin("labweb"), "-udp-probe", "echo.corp.test:7", "-size", "1400", "-count", "200")
		if !strings.Contains(out, "ok: 200 datagrams of 1400 bytes") {
			t.Fatalf("probe: %s", out)
		}
		// Larger than the path's MTU: IP fragments on each side, one datagram end to end.
		out = l.must("client", l.bin("labweb"), "-udp-probe", "echo.corp.test:7", "-size", "8000", "-count", "20")
		if !strings.Contains(out, "ok: 20 datagrams of 8000 bytes") {
			t.Fatalf("probe: %s", out)
		}
		who := l.must("client", l.bin("labweb"), "-udp-probe", "echo.corp.test:7", "-size", "0")
		if !strings.Contains(who, "remote=10.20.0.") {
			t.Fatalf("the echo saw %q, want the publisher's address", who)
		}
		if f := flows(t, l); f.UDPOpen < 1 {
			t.Errorf("status shows %d UDP flows open", f.UDPOpen)
		}
	})

	t.Run("DNS over UDP from a pinned process goes direct", func(t *testing.T) {
		path, err := exec.LookPath("dig")
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		pinned := filepath.Join(t.TempDir(), "dig-pinned")
		if err := os.WriteFile(pinned, b, 0o755); err != nil {
			t.Fatal(err)
		}
		query := []string{"@10.20.0.10", "+short", "+time=2", "+tries=1", "x.corp.test", "A"}
		// The cloud does not forward: a flow that goes direct gets nowhere.
		before := flows(t, l)
		if out, code := l.run("client", append([]string{pinned}, query...)...); code == 0 && strings.TrimSpace(out) != "" {
			t.Fatalf("dig-pinned was answered (%q) while only the tunnel reaches 10.20.0.10", out)
		}
		l.must("cloud", "sysctl", "-qw", "net.ipv4.ip_forward=1")
		defer l.must("cloud", "sysctl", "-qw", "net.ipv4.ip_forward=0")
		if out := strings.TrimSpace(l.must("client", append([]string{pinned}, query...)...)); out != "10.20.0.10" {
			t.Fatalf("dig-pinned @10.20.0.10 = %q, want 10.20.0.10 directly", out)
		}
		after := flows(t, l)
		if after.Steered != before.Steered || after.NotSteered < before.NotSteered+2 {
			t.Fatalf("flows before %+v, after %+v: want no new steered flow, 2 more not steered", before, after)
		}
	})
}
