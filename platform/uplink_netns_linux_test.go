package platform

import (
	"context"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// TestUplinkMTUNetns reads the uplink's MTU in a namespace with two uplinks,
// d0 (MTU 1500) and d1 (1280, the route to 10.9.0.0/16), while the agent's
// routes send 10.9.0.0/16 into its TUN: the bypass mark keeps the lookup on
// the uplink.
func TestUplinkMTUNetns(t *testing.T) {
	n := newTestNetns(t)
	for _, l := range []struct{ name, mtu, addr string }{{"d0", "1500", "10.1.0.2/24"}, {"d1", "1280", "10.2.0.2/24"}} {
		n.addVeth(l.name)
		n.ip("link", "set", l.name, "mtu", l.mtu)
		n.ip("addr", "add", l.addr, "dev", l.name)
		n.ip("link", "set", l.name, "up")
		n.ip("link", "set", l.name+"p", "up")
	}
	n.ip("route", "add", "10.9.0.0/16", "dev", "d1")
	n.ip("link", "set", "zt0", "mtu", "1400")
	r := n.router(t.TempDir())
	if err := r.Set(RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10", "10.9.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	for _, tc := range []struct {
		addr string
		want int
	}{
		{"10.1.0.9:443", 1500},
		{"10.9.0.1:443", 1280},
	} {
		got, err := uplinkMTUIn(t, n.name, tc.addr)
		if err != nil {
			t.Fatalf("UplinkMTU(%s): %v", tc.addr, err)
		}
		if got != tc.want {
			t.Errorf("UplinkMTU(%s) = %d, want %d", tc.addr, got, tc.want)
		}
	}
}

// uplinkMTUIn calls UplinkMTU on a thread moved into the namespace. An IP
// literal needs no resolver goroutine, so the socket and the interface
// dump both happen on this thread.
func uplinkMTUIn(t *testing.T, name, addr string) (int, error) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	mtu, uerr := UplinkMTU(context.Background(), addr)
	if err := netns.Set(orig); err != nil {
		// The thread stays locked, so the runtime discards it.
		t.Fatalf("back to the original namespace: %v", err)
	}
	runtime.UnlockOSThread()
	return mtu, uerr
}
