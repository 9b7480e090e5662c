//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOtherVPN: another VPN in the client owns 100.64.0.0/10 and is the
// client's resolver (lab.sh other-vpn) before the agent starts. The agent
// must take its stub addresses from the tenant's fallback (198.18.0.0/15),
// say so in status, steer its apps there, leave the other VPN's range routed
// to it, and keep the other VPN's names resolving (forwarded to its DNS).
func TestOtherVPN(t *testing.T) {
	requireE2E(t)
	demo, err := os.ReadFile(filepath.Join("..", "testdata", "tenants", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const profile = "  - name: engineering\n    groups: [engineering]\n"
	if !strings.Contains(string(demo), profile) {
		t.Fatal("demo.yaml has no engineering profile to set the fallback in")
	}
	tenant := strings.Replace(string(demo), profile, profile+
		"    client:\n      stub_range_fallbacks: [198.18.0.0/15]\n", 1)
	tenantFile := filepath.Join(t.TempDir(), "othervpn.yaml")
	if err := os.WriteFile(tenantFile, []byte(tenant), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLabEnv(t, map[string]string{"ZT_TENANT": tenantFile})
	l.script("other-vpn")
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })

	st := network(t, l)
	t.Logf("stub range %s: %s", st.StubRange, st.StubRangeReason)
	if st.StubRange != "198.18.0.0/15" || !strings.Contains(st.StubRangeReason, "100.64.0.0/10 is routed to othervpn") {
		t.Fatalf("status.network: %+v", st)
	}
	if out := l.must("client", "dig", "+short", "+time=2", "+tries=1", "web.corp.test"); !strings.HasPrefix(strings.TrimSpace(out), "198.18.") {
		t.Errorf("web.corp.test = %q, want a stub in 198.18.0.0/15", out)
	}
	wantFlow(t, l)
	// The other VPN's names and range stay its own.
	if out := l.must("client", "dig", "+short", "+time=2", "+tries=1", "host.othervpn.test"); strings.TrimSpace(out) != "100.64.7.7" {
		t.Errorf("host.othervpn.test = %q, want the other VPN's 100.64.7.7", out)
	}
	if out := l.must("client", "ip", "route", "get", "100.64.7.7"); !strings.Contains(out, "dev othervpn") {
		t.Errorf("100.64.7.7 is routed %q, want dev othervpn", out)
	}
	if out := l.must("client", "dig", "+short", "+time=2", "+tries=1", "www.public.test"); strings.TrimSpace(out) != "10.10.0.1" {
		t.Errorf("www.public.test = %q, want 10.10.0.1", out)
	}
}
