package platform

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/conn"
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

	before := runtime.NumGoroutine()
	dev, err := CreateTUN("ztmtu0", 1420)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	// Made as wireguard/tun's CreateTUN makes it (its offloads on), but
	// with no goroutine of its own: the monitors it would start wake the
	// agent every second (createTUN).
	if n := runtime.NumGoroutine(); n != before {
		t.Errorf("%d goroutines after creating the TUN device, %d before", n, before)
	}
	if got := dev.BatchSize(); got != conn.IdealBatchSize {
		t.Errorf("BatchSize() = %d, want %d: IFF_VNET_HDR and its offloads not in force", got, conn.IdealBatchSize)
	}
	if got, err := dev.MTU(); err != nil || got != 1420 {
		t.Errorf("MTU at creation %d (%v), want 1420", got, err)
	}
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
