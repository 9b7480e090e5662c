//go:build linux

package e2e

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// TestL3E: the agent dials the L3E gateway in the cloud namespace, gets its
// VPN address and routes, and then a corporate server reaches a server on
// the laptop by that address (server-to-client), the laptop reaches the
// corporate network through the tunnel, a port the template does not allow
// is dropped (and counted at the gateway), and the cloud namespace still
// forwards nothing between client and corp outside the tunnel.
func TestL3E(t *testing.T) {
	requireE2E(t)
	tenant, err := filepath.Abs("../testdata/tenants/l3e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := newLabEnv(t, map[string]string{"ZT_TENANT": tenant})
	l.script("gateway-start")
	l.script("agent-start")

	var st ctlapi.Status
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st = agentStatus(t, l)
		if st.L3E != nil && st.L3E.State == "up" && st.L3E.Address.IsValid() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("L3E not up: %+v", st.L3E)
		}
	}
	me := st.L3E.Address.Addr()
	if st.L3E.Suffix != "corp.test" || len(st.L3E.Routes) != 2 {
		t.Fatalf("L3E status %+v", st.L3E)
	}
	if out := l.must("client", "ip", "-o", "addr", "show", "dev", st.L3E.TUN); !strings.Contains(out, me.String()) {
		t.Fatalf("L3E TUN has not the VPN address %s:\n%s", me, out)
	}
	if out := l.must("client", l.bin("ztdiag"), "--socket", l.sock(), "status"); !strings.Contains(out, "up to 10.10.0.1:443") {
		t.Fatalf("ztdiag status lacks the L3E line:\n%s", out)
	}

	// Server-to-client: the help desk's port 7001 on the laptop, by VPN address.
	l.background("laptop-web", "client", l.bin("labweb"), "--name", "laptop",
		"--listen", netip.AddrPortFrom(me, 7001).String(), "--listen", netip.AddrPortFrom(me, 7100).String())
	url := "http://" + netip.AddrPortFrom(me, 7001).String() + "/"
	var out string
	var code int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if out, code = l.run("corp", "curl", "-sf", "--max-time", "5", url); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("corp → laptop %s: exit %d\n%s", url, code, out)
		}
	}
	if !strings.Contains(out, "laptop") {
		t.Fatalf("corp → laptop: %s", out)
	}
	// Client-to-server through the tunnel: the corporate web on 8080, by address.
	if out := l.must("client", "curl", "-sf", "--max-time", "5", "http://10.20.0.10:8080/"); !strings.Contains(out, "corp") {
		t.Fatalf("laptop → corp: %s", out)
	}
	// Port 7100 is not in the template: dropped at the gateway.
	if out, code := l.run("corp", "curl", "-sf", "--max-time", "3", "http://"+netip.AddrPortFrom(me, 7100).String()+"/"); code == 0 {
		t.Fatalf("corp reached the laptop's port 7100, which no L3E app allows:\n%s", out)
	}
	var gw struct {
		Associations int               `json:"associations"`
		Drops        map[string]uint64 `json:"drops"`
	}
	if err := json.Unmarshal([]byte(l.must("cloud", "curl", "-sf", "http://127.0.0.1:8445/status")), &gw); err != nil {
		t.Fatal(err)
	}
	if gw.Associations != 1 || gw.Drops["policy"] == 0 {
		t.Fatalf("gateway status %+v", gw)
	}
	// Outside the tunnel the cloud namespace forwards nothing between the
	// client and the corporate network.
	if out, code := l.run("corp", "ping", "-c", "1", "-W", "2", "10.10.0.2"); code == 0 {
		t.Fatalf("corp reached the client's own address directly:\n%s", out)
	}

	// Use case 1: the laptop's name in the corporate DNS (RFC 2136 to BIND9,
	// through the tunnel), and use case 2 by that name: the help desk
	// reaches the laptop as laptop1.corp.test through the corporate
	// resolver.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out := strings.TrimSpace(l.must("corp", "dig", "+short", "+time=2", "+tries=1", "@10.20.0.12", "laptop1.corp.test", "A"))
		if out == me.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("laptop1.corp.test at corp-dns: %q, want %s (agent: %q)", out, me, agentStatus(t, l).L3E.DDNS)
		}
	}
	if d := agentStatus(t, l).L3E.DDNS; !strings.Contains(d, "laptop1.corp.test") || !strings.HasSuffix(d, ": registered") {
		t.Errorf("status L3E DDNS %q", d)
	}
	if out := l.must("corp", "curl", "-sf", "--max-time", "5", "http://laptop1.corp.test:7001/"); !strings.Contains(out, "laptop") {
		t.Fatalf("corp → http://laptop1.corp.test:7001/: %s", out)
	}
	// A clean stop removes the name (the wildcard answers again, and the
	// owner record is gone).
	l.script("agent-stop")
	if out := strings.TrimSpace(l.must("corp", "dig", "+short", "+time=2", "+tries=1", "@10.20.0.12", "laptop1.corp.test", "TXT")); out != "" {
		t.Errorf("after the agent stopped, laptop1.corp.test still has TXT %s", out)
	}
	if out := strings.TrimSpace(l.must("corp", "dig", "+short", "+time=2", "+tries=1", "@10.20.0.12", "laptop1.corp.test", "A")); out != "10.20.0.10" {
		t.Errorf("after the agent stopped, laptop1.corp.test is %q, want the wildcard's 10.20.0.10", out)
	}
}
