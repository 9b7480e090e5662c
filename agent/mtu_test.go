package agent

import (
	"cmp"
	"context"
	"errors"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

// TestTUNMTUFollowsUplink starts the agent on fakes with an uplink of each
// MTU and checks the MTU that the TUN device and the userspace stack get.
func TestTUNMTUFollowsUplink(t *testing.T) {
	errNoRoute := errors.New("no route")
	for _, tc := range []struct {
		name   string
		flag   int   // Config.MTU, the --mtu flag
		uplink int   // the uplink's MTU
		err    error // reading it fails
		want   int
	}{
		{name: "Ethernet", uplink: 1500, want: 1500},
		{name: "IPv6 minimum", uplink: 1280, want: 1280},
		{name: "PPPoE", uplink: 1492, want: 1492},
		{name: "below the IPv6 minimum", uplink: 1200, want: 1280},
		{name: "jumbo frames", uplink: 9000, want: 9000},
		{name: "loopback", uplink: 65536, want: 9000},
		{name: "unreadable", err: errNoRoute, want: fallbackTUNMTU},
		{name: "flag wins", flag: 1400, uplink: 1500, want: 1400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked []string
			var created int
			var dev tun.Device
			fa := newFakeAgent(t, "", func(c *Config) {
				c.MTU = tc.flag
				c.UplinkMTU = func(_ context.Context, addr string) (int, error) {
					asked = append(asked, addr)
					return tc.uplink, tc.err
				}
				c.NewTUN = func(name string, mtu int) (tun.Device, error) {
					created = mtu
					d, err := newFakeTUN(name, mtu)
					dev = d
					return d, err
				}
			})
			fa.start(t)
			p := partsOf(t, fa.Agent)
			// Created before the config names the PoP: with the flag's MTU, or
			// the fallback until the uplink's is known.
			if first := cmp.Or(tc.flag, fallbackTUNMTU); created != first {
				t.Errorf("TUN created with MTU %d, want %d", created, first)
			}
			if got, _ := dev.MTU(); got != tc.want {
				t.Errorf("TUN MTU %d, want %d", got, tc.want)
			}
			if got := p.stack.MTU(); got != tc.want {
				t.Errorf("userspace stack MTU %d, want %d", got, tc.want)
			}
			if got := fa.Status().TUN.MTU; got != tc.want {
				t.Errorf("status shows TUN MTU %d, want %d", got, tc.want)
			}
			if tc.flag == 0 && (len(asked) != 1 || asked[0] != "127.0.0.1:1") {
				t.Errorf("uplink asked for %q, want the PoP's 127.0.0.1:1", asked)
			}
			if tc.flag != 0 && len(asked) != 0 {
				t.Errorf("uplink asked for %q with the MTU set by flag", asked)
			}
		})
	}
}
