package agent

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

// TestUDPOnlyAppFailMode: UDP is carried, so the name of a UDP-only app
// follows the fail mode as every L7 app's does (fail-open: the OS's answer
// while the tunnel is down; fail-close: a stub).
func TestUDPOnlyAppFailMode(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	p := partsOf(t, a.Agent) // fail-open, tunnel down
	pol := dnsPolicy{p}
	for _, name := range []string{"dns.corp.test", "web.corp.test"} {
		if _, owned := pol.Lookup(name); owned {
			t.Fatalf("fail-open: %s answered with a stub while the tunnel is down", name)
		}
	}
	withClient(t, p, func(c *steering.ClientConfig) { c.FailMode = steering.FailClose })
	if ans, owned := pol.Lookup("dns.corp.test"); !owned || !ans.Addr.IsValid() {
		t.Fatalf("fail-close: UDP-only app name: %+v, owned %v; want a stub", ans, owned)
	}
}

// TestFailModes: with the tunnel down, what an L7 app's name gets depends on
// client.fail_mode.
func TestFailModes(t *testing.T) {
	for _, tc := range []struct {
		mode                  string
		owned, local, hasAddr bool
	}{
		{steering.FailOpen, false, false, false}, // the OS's resolvers, whichever
		{steering.FailLocal, true, true, false},  // only those on the local network
		{steering.FailClose, true, false, true},  // its stub, whose flows are refused
	} {
		t.Run(tc.mode, func(t *testing.T) {
			a := newFakeAgent(t, "", nil)
			a.cfgs.Set(fakeConfig(fakeApps(), steering.ClientConfig{FailMode: tc.mode}))
			a.start(t)
			ans, owned := dnsPolicy{partsOf(t, a.Agent)}.Lookup("web.corp.test")
			if owned != tc.owned || ans.Local != tc.local || ans.Addr.IsValid() != tc.hasAddr || ans.Upstream != nil {
				t.Fatalf("answer %+v, owned %v", ans, owned)
			}
		})
	}
}

// TestRefusedFlows sends UDP flows the config steers through a TUN device
// whose far side is a userspace client while the tunnel is down: each is
// refused with ICMP destination unreachable, never sent direct, and
// counted; status and match show them steered through the L7 tunnel.
func TestRefusedFlows(t *testing.T) {
	peer, err := netstacktest.NewPeer(netstacktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() }) // runs after the agent's Close, which closes the device
	a := newFakeAgent(t, "", func(c *Config) {
		c.NewTUN = fakeTUNOf(peer.Device())
	})
	a.start(t)
	p := partsOf(t, a.Agent)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	withClient(t, p, func(c *steering.ClientConfig) { c.FailMode = steering.FailClose }) // stubs while down
	dnsStub, _ := dnsPolicy{p}.Lookup("dns.corp.test")

	icmp := func() uint64 { return peer.Stack().Stats().ICMP.V4.PacketsReceived.DstUnreachable.Value() }
	for i, dst := range []string{
		"10.40.0.7:5060", "10.50.0.7:53", // UDP through L7, by address
		netip.AddrPortFrom(dnsStub.Addr, 53).String(), // by name, through its stub
		"100.64.55.55:53", // a stub with no name: not steered, and no real destination
	} {
		c, err := peer.DialUDP(netip.MustParseAddrPort(dst))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("hello"))
		for icmp() < uint64(i+1) {
			if ctx.Err() != nil {
				t.Fatalf("UDP to %s: no ICMP destination unreachable", dst)
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Close()
	}
	st := a.Status()
	if f := st.Flows; f.Refused != 3 || f.NotSteered != 1 || f.Steered != 0 || f.NotCarried != 0 {
		t.Fatalf("flows %+v; want 3 refused (tunnel down), 1 not steered", f)
	}
	for _, app := range st.Apps {
		if app.NotCarried != "" {
			t.Fatalf("app %s not carried: %q", app.ID, app.NotCarried)
		}
	}

	for _, tc := range []struct {
		req          ctlapi.MatchRequest
		action, why  string
		steeringWant string
	}{
		{ctlapi.MatchRequest{Host: "10.50.0.7", Port: 53, Proto: "udp"}, "l7", "", ""},
		{ctlapi.MatchRequest{Host: "10.50.0.7", Port: 22, Proto: "tcp"}, "direct", "", ""},
		{ctlapi.MatchRequest{Host: "10.40.0.7", Port: 5060, Proto: "udp"}, "l7", "", ""},
		{ctlapi.MatchRequest{Host: "10.40.0.7", Port: 5061, Proto: "udp"}, "direct", "", ""},
		{ctlapi.MatchRequest{Host: "10.40.0.7", Port: 5061, Proto: "tcp"}, "l7", "", ""},
		{ctlapi.MatchRequest{Host: "web.corp.test", Port: 80, Proto: "tcp"}, "l7", "", ""},
	} {
		got, err := a.ctl.Match(ctx, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if got.Action != tc.action || got.Steering != tc.steeringWant || (tc.why != "" && got.Reason != tc.why) {
			t.Errorf("match %+v = %+v; want %s (%s)", tc.req, got, tc.action, tc.why)
		}
		if tc.why != "" && !strings.Contains(got.Explain, tc.why) {
			t.Errorf("match %+v explains %q, without why", tc.req, got.Explain)
		}
	}
	if got, _ := a.ctl.Match(ctx, ctlapi.MatchRequest{Host: "voice.corp.test", Proto: "tcp"}); strings.Contains(got.Explain, "Not carried") {
		t.Errorf("a name with UDP ports: %q", got.Explain)
	}
}
