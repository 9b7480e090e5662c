package platform

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// TestSetTUNMTU creates a TUN device in a namespace of its own, as the agent
// does (first, with a provisional MTU), and changes its MTU as the agent's
// start does once the uplink's is known.
func TestSetTUNMTU(t *testing.T) {
	n := newTestNetns(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(n.name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Fatalf("back to the test's namespace: %v", err)
		}
	}()

	dev, err := CreateTUN("ztmtu0", 1420)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	for _, mtu := range []int{1280, 1500, 9000} {
		if err := SetTUNMTU(dev, mtu); err != nil {
			t.Fatal(err)
		}
		if got, err := dev.MTU(); err != nil || got != mtu {
			t.Errorf("device MTU %d (%v), want %d", got, err, mtu)
		}
		if got := n.link("ztmtu0").Attrs().MTU; got != mtu {
			t.Errorf("interface MTU %d, want %d", got, mtu)
		}
	}
}
