//go:build linux

package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The lab's IPv6 (scripts/lab.sh): the client fd00:10::2; the corporate web
// server on fd00:20::10 (also the ipapp app's IPv6 address) and fd00:20::20
// (no app); the cloud namespace forwards IPv6 between them.
const (
	clientV6  = "fd00:10::2"
	appV6     = "fd00:20::10"
	notAppV6  = "fd00:20::20"
	stubRange = "fd7a:7a61:6774::/104" // steering.DefaultStubRange6
)

// ip6Forwarded reads how many IPv6 packets a namespace's kernel has forwarded
// (/proc/net/snmp6, Ip6OutForwDatagrams). In the cloud namespace that is every
// packet between the client and the corporate network that did not go through
// the agent's tunnel.
func ip6Forwarded(t *testing.T, l *lab, role string) int {
	t.Helper()
	for _, line := range strings.Split(l.must(role, "cat", "/proc/net/snmp6"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Ip6OutForwDatagrams" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("Ip6OutForwDatagrams %q", f[1])
			}
			return n
		}
	}
	t.Fatal("no Ip6OutForwDatagrams in /proc/net/snmp6")
	return 0
}

// TestIPv6 checks issue 15's IPv6 item in one lab: private names get AAAA
// answers from the IPv6 stub range and IPv6 flows to them go through the
// tunnel; a dual-stack app's real IPv6 address is reached through the tunnel
// and never over the uplink (counted where a leak would be forwarded), while
// an address no app covers is reached directly (the count sees that).
func TestIPv6(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	before := l.clientNetState()
	l.script("agent-start")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			l.script("agent-stop")
		}
	})
	stubs6 := netip.MustParsePrefix(stubRange)

	t.Run("AAAA from the IPv6 stub range, curl -6 through the tunnel", func(t *testing.T) {
		out := strings.Fields(l.must("client", "dig", "+short", "+time=3", "+tries=1", "web.corp.test", "AAAA"))
		if len(out) != 1 {
			t.Fatalf("dig AAAA web.corp.test: %q, want one address", out)
		}
		if a, err := netip.ParseAddr(out[0]); err != nil || !stubs6.Contains(a) {
			t.Fatalf("AAAA web.corp.test = %q, want an address in %s", out[0], stubs6)
		}
		steered := flows(t, l).Steered
		fwd := ip6Forwarded(t, l, "cloud")
		page := l.must("client", "curl", "-6", "-sS", "--max-time", "10", "http://web.corp.test/")
		wantPage(t, page, "hello from corp web", "host=web.corp.test")
		if got := flows(t, l).Steered; got <= steered {
			t.Errorf("steered flows %d -> %d: curl -6 did not go through the agent", steered, got)
		}
		if n := ip6Forwarded(t, l, "cloud") - fwd; n != 0 {
			t.Errorf("%d IPv6 packets forwarded by the cloud namespace during a tunnelled flow, want 0", n)
		}
	})

	t.Run("ping -6 of a private name through its IPv6 stub", func(t *testing.T) {
		n, out := ping(t, l, "-6", "-c", "2", "-i", "0.3", "web.corp.test")
		if n != 2 || !strings.Contains(out, "from fd7a:7a61:6774:") {
			t.Fatalf("ping -6 web.corp.test: %d replies, want 2 from the IPv6 stub:\n%s", n, out)
		}
	})

	t.Run("a dual-stack app's real IPv6 address: through the tunnel, no packet over the uplink", func(t *testing.T) {
		fwd := ip6Forwarded(t, l, "cloud")
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://["+appV6+"]/")
		wantPage(t, page, "hello from corp web", "local=["+appV6+"]:80")
		if strings.Contains(page, clientV6) {
			t.Fatalf("the app saw the client's own address: the flow went direct:\n%s", page)
		}
		if n := ip6Forwarded(t, l, "cloud") - fwd; n != 0 {
			t.Fatalf("%d IPv6 packets between the client and the corporate network went over the uplink, want 0", n)
		}
		t.Logf("no-leak: 0 packets to %s over the uplink; the app saw %s", appV6, strings.TrimSpace(page))
	})

	t.Run("an address no app covers goes direct, and the count sees it", func(t *testing.T) {
		fwd := ip6Forwarded(t, l, "cloud")
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://["+notAppV6+"]/")
		wantPage(t, page, "hello from corp web", "remote=["+clientV6+"]")
		if n := ip6Forwarded(t, l, "cloud") - fwd; n == 0 {
			t.Fatal("a direct IPv6 flow was not counted: the no-leak count would miss a leak")
		}
	})

	t.Run("stop leaves the client namespace as it was", func(t *testing.T) {
		l.script("agent-stop")
		stopped = true
		if after := l.clientNetState(); after != before {
			t.Fatalf("client namespace changed:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

// TestIPv6Only runs the agent on a client with IPv6 only: no IPv4 address on
// its uplink (so no IPv4 default route either), the tenant API and the PoP
// reached over IPv6. Private names still resolve (A and AAAA stubs from the
// agent's own DNS on its TUN) and IPv6 flows go through the tunnel.
func TestIPv6Only(t *testing.T) {
	requireE2E(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	demo, err := os.ReadFile(filepath.Join(root, "testdata/tenants/demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const v4PoP = "  address: 10.10.0.1:8443\n"
	if !strings.Contains(string(demo), v4PoP) {
		t.Fatalf("demo.yaml no longer names the PoP as %q", v4PoP)
	}
	tenant := filepath.Join(t.TempDir(), "ipv6only.yaml")
	v6 := strings.Replace(string(demo), v4PoP, "  address: \"[fd00:10::1]:8443\"\n", 1)
	if err := os.WriteFile(tenant, []byte(v6), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLabEnv(t, map[string]string{
		"ZT_TENANT": tenant, "ZT_LAB_API": ":8444", "ZT_LAB_POP": ":8443", "ZT_LAB_HOST": "[fd00:10::1]:8444",
	})
	l.must("client", "ip", "addr", "del", "10.10.0.2/24", "dev", "eth0")
	if out, code := l.run("client", "curl", "-4", "-sS", "--max-time", "3", "http://10.10.0.1/"); code == 0 {
		t.Fatalf("the client still reaches the cloud over IPv4:\n%s", out)
	}
	before := l.clientNetState()
	l.script("agent-start")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			l.script("agent-stop")
		}
	})

	t.Run("the tunnel runs over IPv6", func(t *testing.T) {
		st := agentStatus(t, l)
		if st.Tunnel.State != "connected" || st.Tunnel.PoP != "[fd00:10::1]:8443" {
			t.Fatalf("state %s, tunnel %+v; want connected to [fd00:10::1]:8443", st.State, st.Tunnel)
		}
	})

	t.Run("private name over IPv6: AAAA stub, curl -6 through the tunnel", func(t *testing.T) {
		out := strings.Fields(l.must("client", "dig", "+short", "+time=3", "+tries=1", "web.corp.test", "AAAA"))
		if len(out) != 1 {
			t.Fatalf("dig AAAA web.corp.test: %q, want one address", out)
		}
		if a, err := netip.ParseAddr(out[0]); err != nil || !netip.MustParsePrefix(stubRange).Contains(a) {
			t.Fatalf("AAAA web.corp.test = %q, want an address in %s", out[0], stubRange)
		}
		page := l.must("client", "curl", "-6", "-sS", "--max-time", "10", "http://web.corp.test/")
		wantPage(t, page, "hello from corp web", "host=web.corp.test")
	})

	t.Run("an app's IPv6 address through the tunnel, no packet over the uplink", func(t *testing.T) {
		fwd := ip6Forwarded(t, l, "cloud")
		page := l.must("client", "curl", "-sS", "--max-time", "10", "http://["+appV6+"]/")
		wantPage(t, page, "hello from corp web", "local=["+appV6+"]:80")
		if n := ip6Forwarded(t, l, "cloud") - fwd; n != 0 {
			t.Fatalf("%d IPv6 packets between the client and the corporate network went over the uplink, want 0", n)
		}
	})

	t.Run("stop leaves the client namespace as it was", func(t *testing.T) {
		l.script("agent-stop")
		stopped = true
		if after := l.clientNetState(); after != before {
			t.Fatalf("client namespace changed:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}
