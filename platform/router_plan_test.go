package platform

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func routerPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func opStrings(ops []routerOp) []string {
	var out []string
	for _, op := range ops {
		out = append(out, op.String())
	}
	return out
}

var (
	ruleAdds = []string{
		"ip rule add priority 5270 not fwmark 0x7a/0xffffffff lookup 122",
		"ip -6 rule add priority 5270 not fwmark 0x7a/0xffffffff lookup 122",
	}
	ruleDels = []string{
		"ip rule del priority 5270 not fwmark 0x7a/0xffffffff lookup 122",
		"ip -6 rule del priority 5270 not fwmark 0x7a/0xffffffff lookup 122",
	}
)

func TestPlanRouter(t *testing.T) {
	zt0 := RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10", "10.20.0.0/24")}
	first := compileRouter(zt0, 7, true)
	cases := []struct {
		name       string
		have, want routerState
		ops        []string
	}{
		{"first set: addresses, up, rules, routes", routerState{}, first, slices.Concat(
			[]string{"ip address add 100.64.0.1/32 dev zt0", "ip link set zt0 up"}, ruleAdds,
			[]string{"ip route add 100.64.0.0/10 dev zt0 table 122 proto 122",
				"ip route add 10.20.0.0/24 dev zt0 table 122 proto 122"})},
		{"same config: nothing", first, compileRouter(zt0, 7, true), nil},
		{"a route more, a route less", first, compileRouter(RouterConfig{Interface: "zt0",
			Addrs: zt0.Addrs, Routes: routerPrefixes("100.64.0.0/10", "fd7a::/48")}, 7, true), []string{
			"ip -6 route add fd7a::/48 dev zt0 table 122 proto 122",
			"ip route del 10.20.0.0/24 dev zt0 table 122 proto 122"}},
		{"dual stack: the IPv6 stub address and range, an app's IPv6 prefix", first, compileRouter(RouterConfig{Interface: "zt0",
			Addrs:  routerPrefixes("100.64.0.1/32", "fd7a:7a61:6774::1/128"),
			Routes: routerPrefixes("100.64.0.0/10", "fd7a:7a61:6774::/104", "10.20.0.0/24", "fd00:20::/64")}, 7, true), []string{
			"ip address add fd7a:7a61:6774::1/128 dev zt0",
			"ip -6 route add fd7a:7a61:6774::/104 dev zt0 table 122 proto 122",
			"ip -6 route add fd00:20::/64 dev zt0 table 122 proto 122"}},
		{"undo: routes, addresses, link, then rules", first, routerState{}, slices.Concat([]string{
			"ip route del 100.64.0.0/10 dev zt0 table 122 proto 122",
			"ip route del 10.20.0.0/24 dev zt0 table 122 proto 122",
			"ip address del 100.64.0.1/32 dev zt0", "ip link set zt0 down"}, ruleDels)},
		{"another device: the old one loses what it got", first, compileRouter(RouterConfig{Interface: "zt1",
			Addrs: zt0.Addrs, Routes: routerPrefixes("100.64.0.0/10")}, 9, false), []string{
			"ip address add 100.64.0.1/32 dev zt1",
			"ip route add 100.64.0.0/10 dev zt1 table 122 proto 122",
			"ip route del 100.64.0.0/10 dev zt0 table 122 proto 122",
			"ip route del 10.20.0.0/24 dev zt0 table 122 proto 122",
			"ip address del 100.64.0.1/32 dev zt0", "ip link set zt0 down"}},
		{"same name, new index (a new TUN): a new device", first, compileRouter(RouterConfig{Interface: "zt0",
			Addrs: zt0.Addrs}, 8, true), []string{
			"ip address add 100.64.0.1/32 dev zt0", "ip link set zt0 up",
			"ip route del 100.64.0.0/10 dev zt0 table 122 proto 122",
			"ip route del 10.20.0.0/24 dev zt0 table 122 proto 122",
			"ip address del 100.64.0.1/32 dev zt0", "ip link set zt0 down"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := opStrings(planRouter(tc.have, tc.want)); !reflect.DeepEqual(got, tc.ops) {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.ops, "\n  "))
			}
		})
	}
}

func TestCompileRouterNormalises(t *testing.T) {
	s := compileRouter(RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32", "100.64.0.1/32"),
		Routes: routerPrefixes("10.20.0.11/24", "10.20.0.0/24", "100.64.0.0/10")}, 3, false)
	l := s.Links[0]
	if !reflect.DeepEqual(l.Addrs, routerPrefixes("100.64.0.1/32")) {
		t.Errorf("addrs %v: want one, kept as given", l.Addrs)
	}
	var dsts []string
	for _, r := range l.Routes {
		dsts = append(dsts, r.Dst.String())
	}
	if !reflect.DeepEqual(dsts, []string{"10.20.0.0/24", "100.64.0.0/10"}) {
		t.Errorf("routes %v: want masked and deduplicated", dsts)
	}
}

func TestClaimRouterLeavesOthersAlone(t *testing.T) {
	cfg := RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10", "10.20.0.0/24")}
	want := compileRouter(cfg, 7, true)
	v4rule := bypassRules()[0]
	sys := osRouting{
		Rules: []ruleSpec{v4rule},
		Addrs: []linkAddr{{7, netip.MustParsePrefix("100.64.0.1/32")}},
		// Someone else's route for one of the app prefixes, on another device.
		Routes: []linkRoute{{3, routeSpec{Dst: netip.MustParsePrefix("10.20.0.0/24"), Table: 122, Proto: 4}}},
	}
	t.Run("not in the journal: someone else's", func(t *testing.T) {
		got, foreign := claimRouter(routerState{}, want, sys)
		if len(foreign) != 3 {
			t.Fatalf("foreign %q: want the rule, the address and the route", foreign)
		}
		if !reflect.DeepEqual(got.Rules, bypassRules()[1:]) {
			t.Errorf("rules %v: want only the IPv6 one", got.Rules)
		}
		l := got.Links[0]
		if len(l.Addrs) != 0 || len(l.Routes) != 1 || l.Routes[0].Dst.String() != "100.64.0.0/10" || !l.Up {
			t.Errorf("link %+v: want no address, the stub route only, up", l)
		}
		// What is not claimed is never removed.
		for _, op := range opStrings(planRouter(got, routerState{})) {
			if strings.Contains(op, "10.20.0.0/24") || strings.Contains(op, "100.64.0.1/32") ||
				op == ruleDels[0] {
				t.Errorf("undo removes someone else's entry: %s", op)
			}
		}
	})
	t.Run("in the journal: the agent's", func(t *testing.T) {
		got, foreign := claimRouter(want, want, sys)
		if len(foreign) != 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("claim of the journalled state: %+v, foreign %q", got, foreign)
		}
	})
}

func TestUnionRouterHoldsBoth(t *testing.T) {
	a := compileRouter(RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10", "10.20.0.0/24")}, 7, false)
	b := compileRouter(RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10", "fd7a::/48")}, 7, true)
	c := compileRouter(RouterConfig{Interface: "zt1", Addrs: routerPrefixes("100.64.0.2/32")}, 9, false)
	u := unionRouter(unionRouter(a, b), c)
	for _, s := range []routerState{a, b, c} {
		// Everything in s is in u: undoing u removes all of s.
		if ops := planRouter(u, s); slices.ContainsFunc(ops, routerOp.adds) {
			t.Errorf("union %+v misses part of %+v: %q", u, s, opStrings(ops))
		}
	}
	if len(u.Links) != 2 || !u.Links[0].Up || len(u.Links[0].Routes) != 3 || len(u.Rules) != 2 {
		t.Errorf("union %+v", u)
	}
}

// The journal's format is what a later version's repair reads: keep it.
func TestRouterJournalFormat(t *testing.T) {
	s := compileRouter(RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10")}, 7, true)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"version":1,"rules":[` +
		`{"family":2,"priority":5270,"table":122,"fwmark":122,"fwmask":4294967295,"invert":true},` +
		`{"family":10,"priority":5270,"table":122,"fwmark":122,"fwmask":4294967295,"invert":true}],` +
		`"links":[{"name":"zt0","index":7,"up":true,"addrs":["100.64.0.1/32"],` +
		`"routes":[{"dst":"100.64.0.0/10","table":122,"proto":122}]}]}`
	if string(b) != want {
		t.Errorf("journal:\n%s\nwant:\n%s", b, want)
	}
	var back routerState
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("read back %+v (%v), want %+v", back, err, s)
	}
}

// manyRoutes returns n distinct /29 routes starting at 172.16.0.0 shifted by
// off /29s.
func manyRoutes(n, off int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		k := uint32(i+off) * 8
		out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(16 + k>>16), byte(k >> 8), byte(k)}), 29)
	}
	return out
}

// BenchmarkRouterChange30k is a config change at 10,000 apps: 30,000 routes
// in force, 30,000 wanted, half of them new. Before the sets, claiming,
// planning and journalling it scanned the lists once per route (seconds).
func BenchmarkRouterChange30k(b *testing.B) {
	const n = 30000
	have := compileRouter(RouterConfig{Interface: "zt0", Routes: manyRoutes(n, 0)}, 7, true)
	want := compileRouter(RouterConfig{Interface: "zt0", Routes: manyRoutes(n, n/2)}, 7, true)
	sys := osRouting{}
	for _, r := range have.Links[0].Routes {
		sys.Routes = append(sys.Routes, linkRoute{7, r})
	}
	b.ReportAllocs()
	for range b.N {
		w, foreign := claimRouter(have, want, sys)
		plan := planRouter(have, w)
		all := unionRouter(have, w)
		if len(foreign) != 0 || len(plan) != n || len(all.Links[0].Routes) != n+n/2 {
			b.Fatalf("%d foreign, %d changes, %d routes in the union", len(foreign), len(plan), len(all.Links[0].Routes))
		}
	}
}
