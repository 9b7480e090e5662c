package platformtest

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/ztagent/ztagent/platform"
)

func TestDNSFake(t *testing.T) {
	up := netip.MustParseAddrPort("192.0.2.53:53")
	d := NewDNS(up)
	if _, ok := d.Current(); ok {
		t.Fatal("fresh fake reports a configuration")
	}
	cfg := platform.DNSConfig{Servers: []netip.Addr{netip.MustParseAddr("100.64.0.53")}, Interface: "zt0"}
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Servers[0] = netip.MustParseAddr("192.0.2.99") // the fake must hold a copy
	if cur, ok := d.Current(); !ok || cur.Servers[0] != netip.MustParseAddr("100.64.0.53") || cur.Interface != "zt0" {
		t.Fatalf("Current %v %v", cur, ok)
	}
	if u, _ := d.Upstreams(); !slices.Equal(u, []netip.AddrPort{up}) {
		t.Fatalf("Upstreams %v", u)
	}
	d.RestoreErr = errors.New("boom")
	if err := d.Restore(); err == nil {
		t.Fatal("RestoreErr not returned")
	}
	if _, ok := d.Current(); !ok {
		t.Fatal("failed Restore changed the state")
	}
	d.RestoreErr = nil
	if err := d.Restore(); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Current(); ok {
		t.Fatal("Restore left a configuration")
	}
	want := []string{"Set", "Upstreams", "Restore", "Restore"}
	if got := d.Calls(); !slices.Equal(got, want) {
		t.Fatalf("Calls %v, want %v", got, want)
	}
	if len(d.Sets()) != 1 {
		t.Fatalf("Sets %v", d.Sets())
	}
}
