//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCaptivePortal: the client, connected, joins a hotel's network (lab.sh
// hotel) whose DNS answers every name with the portal's address, whose web
// server redirects every request to its login page and which forwards
// nothing until the user signs in (lab.sh hotel-open). The agent must find
// the portal within 10 s and say so in status; leave the portal's DNS alone
// (public names still resolve through the hotel's resolver, so a browser
// reaches the login page); not retry the PoP hot while the portal is closed
// (the client's TCP connection attempts are counted); and connect within
// 10 s of the portal opening.
func TestCaptivePortal(t *testing.T) {
	requireE2E(t)
	demo, err := os.ReadFile(filepath.Join("..", "testdata", "tenants", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const profile = "  - name: engineering\n    groups: [engineering]\n"
	if !strings.Contains(string(demo), profile) {
		t.Fatal("demo.yaml has no engineering profile to set the check in")
	}
	tenant := strings.Replace(string(demo), profile, profile+
		"    client:\n      captive_check: http://check.public.test/generate_204\n", 1)
	tenantFile := filepath.Join(t.TempDir(), "captive.yaml")
	if err := os.WriteFile(tenantFile, []byte(tenant), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLabEnv(t, map[string]string{"ZT_TENANT": tenantFile})
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })
	wantFlow(t, l)

	l.script("hotel")
	took := poll(t, l, "the captive portal found", 15*time.Second, func() bool { return network(t, l).Captive })
	st := network(t, l)
	t.Logf("captive portal found %v after joining the hotel: %s", ms(took), st.CaptiveReason)
	if took > 10*time.Second {
		t.Errorf("portal found after %v, want ≤ 10 s", ms(took))
	}
	if !strings.Contains(st.CaptiveReason, "302") {
		t.Errorf("captive reason %q does not name the redirect", st.CaptiveReason)
	}
	// The portal's DNS is not hijacked: a public name resolves through the
	// hotel's resolver, and the browser gets the login redirect.
	if out := l.must("client", "dig", "+short", "+time=2", "+tries=1", "login.hotel.test"); strings.TrimSpace(out) != "10.60.0.1" {
		t.Errorf("login.hotel.test resolves to %q, want the portal's 10.60.0.1", out)
	}
	if out := l.must("client", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://login.hotel.test/"); out != "302" {
		t.Errorf("the portal answered %q, want 302", out)
	}
	// No hot retrying while the portal is closed: the client's connection
	// attempts in 15 s are the captive checks (every 3 s) and a few PoP
	// dials let through (5 s, then 10 s apart), not one every half second.
	const window = 15 * time.Second
	before := activeOpens(t, l)
	time.Sleep(window)
	opens := activeOpens(t, l) - before
	t.Logf("behind the closed portal: %d TCP connection attempts in %v", opens, window)
	if opens > 10 {
		t.Errorf("%d TCP connection attempts in %v behind the portal, want ≤ 10", opens, window)
	}
	if network(t, l).Captive != true || tunnelState(t, l) == "connected" {
		t.Fatal("the portal was forgotten while still closed")
	}

	l.script("hotel-open")
	took = poll(t, l, "the tunnel up after the portal opened", 15*time.Second, func() bool { return tunnelState(t, l) == "connected" })
	t.Logf("tunnel up %v after the portal opened", ms(took))
	if took > 10*time.Second {
		t.Errorf("tunnel up %v after the portal opened, want ≤ 10 s", ms(took))
	}
	if st := network(t, l); st.Captive {
		t.Errorf("still captive after the portal opened: %s", st.CaptiveReason)
	}
	poll(t, l, "a flow through the hotel", 10*time.Second, func() bool { return flowWorks(l) })
}

// activeOpens returns the client namespace's count of TCP connection
// attempts (Tcp ActiveOpens in /proc/net/snmp).
func activeOpens(t *testing.T, l *lab) int {
	t.Helper()
	out := l.must("client", "cat", "/proc/net/snmp")
	var names []string
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "ActiveOpens" && i < len(fields) {
				v, err := strconv.Atoi(fields[i])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no Tcp ActiveOpens in /proc/net/snmp:\n%s", out)
	return 0
}
