//go:build linux

package e2e

import (
	"strings"
	"testing"
)

// TestPathMTUBlackHole runs the lab with an MTU black hole between the
// client and the cloud: both ends' interfaces say 1500, a bridge between
// them carries at most 1280 bytes and drops larger frames without an ICMP
// "fragmentation needed" (lab.sh, ZT_LAB_PATH_MTU). A plain TCP download
// across it stalls; through the agent, whose TLS connection to the PoP is
// clamped to a 1280-byte path, a 20 MB download and 1,400-byte datagrams
// pass, and the TUN MTU follows the 1500-byte uplink; then again with the
// client's own uplink at 1280.
func TestPathMTUBlackHole(t *testing.T) {
	requireE2E(t)
	l := newLabEnv(t, map[string]string{"ZT_LAB_PATH_MTU": "1280"})

	t.Run("the black hole is there", func(t *testing.T) {
		// 1252 bytes of ICMP payload make a 1280-byte packet; 1400 do not pass.
		l.must("client", "ping", "-c1", "-W2", "-M", "do", "-s", "1252", "10.10.0.1")
		if out, code := l.run("client", "ping", "-c1", "-W2", "-M", "do", "-s", "1400", "10.10.0.1"); code == 0 {
			t.Fatalf("a 1428-byte packet crossed the 1280-byte hop:\n%s", out)
		}
		// A TCP download straight from the cloud's web server (not clamped)
		// connects, then stalls on its first full-sized segment.
		if out, code := l.run("client", "curl", "-sS", "-o", "/dev/null", "--max-time", "5",
			"http://10.10.0.1/bytes?n=1000000"); code != curlTimeout {
			t.Fatalf("direct download across the black hole: exit %d, want the stall (%d)\n%s", code, curlTimeout, out)
		}
	})

	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })

	t.Run("TUN MTU follows the uplink", func(t *testing.T) {
		if out := l.must("client", "ip", "-o", "link", "show", "zt0"); !strings.Contains(out, " mtu 1500 ") {
			t.Fatalf("zt0: %s, want mtu 1500 (the client's uplink)", out)
		}
	})

	t.Run("20 MB download", func(t *testing.T) { download20MB(t, l) })

	t.Run("1400-byte datagrams both ways", func(t *testing.T) { udpProbe1400(t, l) })

	// The client's own uplink at 1280: the agent, restarted, gives the TUN
	// 1280, and 1,400-byte datagrams cross it as IP fragments (the kernel
	// fragments them into the TUN, the userspace stack reassembles them, and
	// back), whole at each end.
	l.script("agent-stop")
	l.must("client", "ip", "link", "set", "eth0", "mtu", "1280")
	l.script("agent-start")

	t.Run("uplink at 1280: TUN MTU 1280", func(t *testing.T) {
		if out := l.must("client", "ip", "-o", "link", "show", "zt0"); !strings.Contains(out, " mtu 1280 ") {
			t.Fatalf("zt0: %s, want mtu 1280 (the client's uplink)", out)
		}
	})
	t.Run("uplink at 1280: 20 MB download", func(t *testing.T) { download20MB(t, l) })
	t.Run("uplink at 1280: 1400-byte datagrams both ways", func(t *testing.T) { udpProbe1400(t, l) })
}

func download20MB(t *testing.T, l *lab) {
	t.Helper()
	out := l.must("client", "curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", "--max-time", "60",
		"http://web.corp.test/bytes?n=20000000")
	if strings.TrimSpace(out) != "20000000" {
		t.Fatalf("downloaded %s bytes, want 20000000", out)
	}
}

func udpProbe1400(t *testing.T, l *lab) {
	t.Helper()
	out := l.must("client", l.bin("labweb"), "-udp-probe", "echo.corp.test:7", "-size", "1400", "-count", "200")
	if !strings.Contains(out, "ok: 200 datagrams of 1400 bytes") {
		t.Fatalf("probe: %s", out)
	}
}
