package agent

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/platform/platformtest"
	"github.com/ztagent/ztagent/steering"
)

func TestPickStubRange(t *testing.T) {
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	bench := netip.MustParsePrefix("198.18.0.0/15")
	ula := netip.MustParsePrefix("10.255.0.0/16")
	tests := []struct {
		name      string
		fallbacks []netip.Prefix
		owners    map[netip.Prefix]string
		want      netip.Prefix
		why       string
	}{
		{"free", []netip.Prefix{bench}, nil, cgnat, ""},
		{"taken", []netip.Prefix{bench, ula}, map[netip.Prefix]string{cgnat: "tailscale0"}, bench,
			"100.64.0.0/10 is routed to tailscale0; stub addresses come from 198.18.0.0/15"},
		{"first fallback taken too", []netip.Prefix{bench, ula}, map[netip.Prefix]string{cgnat: "tailscale0", bench: "wg0"}, ula,
			"100.64.0.0/10 is routed to tailscale0, 198.18.0.0/15 to wg0; stub addresses come from 10.255.0.0/16"},
		{"all taken", []netip.Prefix{bench}, map[netip.Prefix]string{cgnat: "tailscale0", bench: "wg0"}, cgnat,
			"100.64.0.0/10 is routed to tailscale0, 198.18.0.0/15 to wg0: no free fallback, kept"},
		{"no fallbacks", nil, map[netip.Prefix]string{cgnat: "tailscale0"}, cgnat,
			"100.64.0.0/10 is routed to tailscale0 and no client.stub_range_fallbacks are set: kept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := pickStubRange(cgnat, tt.fallbacks, func(p netip.Prefix) string { return tt.owners[p] })
			if got != tt.want || why != tt.why {
				t.Errorf("pickStubRange = %v, %q; want %v, %q", got, why, tt.want, tt.why)
			}
		})
	}
}

// TestStubRangeTaken: on an agent on fakes whose stub range another
// interface routes, stubs come from the fallback, the TUN address and
// routes with them, and status says why; when the other VPN goes away, a
// network change brings the configured range back (by a restart).
func TestStubRangeTaken(t *testing.T) {
	var mu sync.Mutex
	owned := map[netip.Prefix]string{steering.DefaultStubRange: "othervpn"}
	mon := platformtest.NewNetMonitor()
	fa := newFakeAgent(t, "", func(c *Config) {
		c.NewNetMonitor = func([]string, *zap.Logger) (platform.NetMonitor, error) { return mon, nil }
		c.RouteOwner = func(p netip.Prefix, exclude string) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			if exclude == "" {
				t.Error("RouteOwner without the TUN device to exclude")
			}
			return owned[p], nil
		}
	})
	fa.cfgs.Set(fakeConfig(fakeApps(), steering.ClientConfig{StubRangeFallbacks: []string{"198.18.0.0/15"}, FailMode: steering.FailClose}))
	fa.start(t)
	st := waitStatus(t, fa.Agent, "running", running)
	if st.Network.StubRange != "198.18.0.0/15" || !strings.Contains(st.Network.StubRangeReason, "100.64.0.0/10 is routed to othervpn") {
		t.Fatalf("network status %+v", st.Network)
	}
	if st.TUN.Addr != netip.MustParseAddr("198.18.0.1") || st.TUN.Routes[0].String() != "198.18.0.0/15" {
		t.Errorf("TUN %v, routes %v", st.TUN.Addr, st.TUN.Routes)
	}
	p := partsOf(t, fa.Agent)
	a, ok := dnsPolicy{p}.Lookup("web.corp.test")
	if !ok || !netip.MustParsePrefix("198.18.0.0/15").Contains(a.Addr) {
		t.Errorf("web.corp.test answered %v (owned %v), want a stub in the fallback", a.Addr, ok)
	}

	mu.Lock()
	delete(owned, steering.DefaultStubRange)
	mu.Unlock()
	mon.Change()
	waitStatus(t, fa.Agent, "the configured range back", func(st ctlapi.Status) bool {
		return running(st) && st.Network.StubRange == "100.64.0.0/10" && st.Network.StubRangeReason == ""
	})
}
