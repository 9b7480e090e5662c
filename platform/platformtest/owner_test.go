package platformtest

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ztagent/ztagent/platform"
)

func TestOwners(t *testing.T) {
	ap := netip.MustParseAddrPort
	chrome := platform.Owner{PID: 10, UID: 501, Process: "chrome", Path: "/opt/google/chrome/chrome"}
	resolved := platform.Owner{PID: 20, Process: "systemd-resolved"}
	var o Owners
	o.Set("tcp", ap("10.0.0.2:41000"), chrome)
	o.Set("udp", ap("[::]:5353"), resolved)
	tests := []struct {
		name  string
		proto string
		local netip.AddrPort
		want  platform.Owner
		found bool
	}{
		{"tcp", "tcp", ap("10.0.0.2:41000"), chrome, true},
		{"tcp mapped", "tcp", ap("[::ffff:10.0.0.2]:41000"), chrome, true},
		{"udp is another table", "udp", ap("10.0.0.2:41000"), platform.Owner{}, false},
		{"udp wildcard v4", "udp", ap("127.0.0.1:5353"), resolved, true},
		{"udp wildcard v6", "udp", ap("[fe80::1%eth0]:5353"), resolved, true},
		{"tcp never wildcard", "tcp", ap("127.0.0.1:5353"), platform.Owner{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := o.Lookup(tt.proto, tt.local, ap("1.1.1.1:443"))
			if tt.found != (err == nil) || (!tt.found && !errors.Is(err, platform.ErrOwnerNotFound)) {
				t.Fatalf("err = %v, want found=%v", err, tt.found)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	o.Remove("tcp", ap("10.0.0.2:41000"))
	if _, err := o.Lookup("tcp", ap("10.0.0.2:41000"), netip.AddrPort{}); !errors.Is(err, platform.ErrOwnerNotFound) {
		t.Errorf("after Remove: %v", err)
	}
	boom := errors.New("boom")
	o.Fail(boom)
	if _, err := o.Lookup("udp", ap("127.0.0.1:5353"), netip.AddrPort{}); err != boom {
		t.Errorf("Fail: %v", err)
	}
	if _, err := o.Lookup("sctp", ap("127.0.0.1:5353"), netip.AddrPort{}); err == nil || errors.Is(err, platform.ErrOwnerNotFound) {
		t.Errorf("bad proto: %v", err)
	}
	if n := o.Lookups(); n != len(tests)+3 {
		t.Errorf("Lookups = %d, want %d", n, len(tests)+3)
	}
}
