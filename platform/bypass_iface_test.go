package platform

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestPrimaryInterface(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes []defaultRoute
		want   int
		ok     bool
	}{
		{"none", nil, 0, false},
		{"one", []defaultRoute{{Index: 4, Metric: 35}}, 4, true},
		{"lowest metric wins", []defaultRoute{{Index: 4, Metric: 35}, {Index: 9, Metric: 25}}, 9, true},
		{"tie: first", []defaultRoute{{Index: 4, Metric: 0}, {Index: 9, Metric: 0}}, 4, true},
		{"macOS: unscoped before scoped", []defaultRoute{{Index: 6, Metric: 1}, {Index: 5, Metric: 0}}, 5, true},
		{"no index", []defaultRoute{{Index: 0, Metric: 0}}, 0, false},
	} {
		got, ok := primaryInterface(tc.routes)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %d %v, want %d %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIfaceCache(t *testing.T) {
	now := time.Unix(1000, 0)
	reads := map[bool]int{}
	table := map[bool][]defaultRoute{false: {{Index: 4, Metric: 5}}, true: {{Index: 7}}}
	var fail error
	c := &ifaceCache{now: func() time.Time { return now }, read: func(v6 bool) ([]defaultRoute, error) {
		reads[v6]++
		return table[v6], fail
	}}
	check := func(dst string, want int, wantOK bool) {
		t.Helper()
		got, ok, err := c.primary(netip.MustParseAddr(dst))
		if err != nil || got != want || ok != wantOK {
			t.Fatalf("%s: %d %v %v, want %d %v", dst, got, ok, err, want, wantOK)
		}
	}
	check("192.0.2.1", 4, true)
	check("::ffff:192.0.2.9", 4, true) // a mapped address is IPv4
	check("2001:db8::1", 7, true)
	check("127.0.0.1", 0, false) // this machine: not bound
	check("::1", 0, false)
	if reads[false] != 1 || reads[true] != 1 {
		t.Fatalf("read the table %v times, want once per family", reads)
	}
	table[false] = []defaultRoute{{Index: 9}}
	check("192.0.2.1", 4, true) // cached
	now = now.Add(bypassTTL)
	check("192.0.2.1", 9, true) // the default route moved
	table[false] = nil
	now = now.Add(bypassTTL)
	check("192.0.2.1", 0, false) // no default route: not bound
	fail = errors.New("boom")
	now = now.Add(bypassTTL)
	if _, _, err := c.primary(netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Fatal("a failed read is not reported")
	}
}

func TestDialDest(t *testing.T) {
	if got := dialDest("192.0.2.1:443"); got != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("got %v", got)
	}
	if got := dialDest("[2001:db8::1]:53"); got != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("got %v", got)
	}
	if got := dialDest("example.com:443"); got.IsValid() {
		t.Errorf("a name parsed as %v", got)
	}
}
