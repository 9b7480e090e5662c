package steering

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestAddrTableEdges checks the family-sized tables against a linear scan:
// for addresses at and around every prefix's bounds, the innermost prefix
// and the chain of enclosing ones through the parents, and the covered
// intervals the routes are made of.
func TestAddrTableEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rand4 := func(n int) []string {
		var out []string
		for range n {
			a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			p, _ := a.Prefix(8 + rng.IntN(25))
			out = append(out, p.String())
		}
		return out
	}
	rand6 := func(n int) []string {
		var out []string
		for range n {
			var b [16]byte
			b[0], b[1], b[2] = 0xfd, byte(rng.IntN(2)), byte(rng.IntN(256))
			p, _ := netip.AddrFrom16(b).Prefix(8 + rng.IntN(121))
			out = append(out, p.String())
		}
		return out
	}
	tests := []struct {
		name string
		in   []string
	}{
		{"v4 all", []string{"0.0.0.0/0"}},
		{"v4 all and edges", []string{"0.0.0.0/0", "0.0.0.0/32", "255.255.255.255/32", "128.0.0.0/1"}},
		{"v4 top", []string{"255.255.255.255/32"}},
		{"v4 bottom", []string{"0.0.0.0/32", "0.0.0.1/32"}},
		{"v4 nested adjacent", []string{"10.0.0.0/8", "10.0.0.0/9", "10.128.0.0/9", "10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25"}},
		{"v4 range to the top", []string{"range 200.0.0.1-255.255.255.255", "255.255.255.0/24", "10.0.0.0/8"}},
		{"v4 range from zero", []string{"range 0.0.0.0-9.255.255.255", "range 10.0.0.0-10.0.0.77", "10.0.0.64/26"}},
		{"v4 duplicates", []string{"10.0.0.0/8", "10.1.0.0/16", "10.0.0.0/8", "10.1.0.0/16"}},
		{"v4 ties interleaved", []string{"10.0.0.0/8", "10.1.0.0/16", "10.0.0.0/8", "10.2.0.0/16", "10.0.0.0/8", "10.1.0.0/16", "10.3.0.0/16"}},
		{"v4 random", rand4(300)},
		{"v6 all", []string{"::/0"}},
		{"v6 all and edges", []string{"::/0", "::/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "8000::/1"}},
		{"v6 top", []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"}},
		{"v6 nested adjacent", []string{"fd00::/8", "fd00::/9", "fd80::/9", "fd00::/64", "fd00:0:0:1::/64", "fd00::1/128"}},
		{"v6 range to the top", []string{"range fe00::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00::/8"}},
		{"v6 random", rand6(300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAddrTable(t, rng, expandPrefixes(t, tt.in))
		})
	}
}

// expandPrefixes parses prefixes and "range a-b" entries.
func expandPrefixes(t *testing.T, in []string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range in {
		var a, b string
		if n, _ := fmt.Sscanf(s, "range %s", &a); n == 1 {
			for i := range a {
				if a[i] == '-' {
					a, b = a[:i], a[i+1:]
					break
				}
			}
			ps = append(ps, rangePrefixes(netip.MustParseAddr(a), netip.MustParseAddr(b))...)
			continue
		}
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func checkAddrTable(t *testing.T, rng *rand.Rand, ps []netip.Prefix) {
	t.Helper()
	v4 := ps[0].Addr().Is4()
	in := make([]prefixRule, len(ps))
	for i, p := range ps {
		in[i] = prefixRule{p, int32(i)}
	}
	tab := buildAddrTable(in, v4)
	var probes []netip.Addr
	for _, p := range ps {
		lo, hi, _ := prefixBounds(p)
		for _, u := range []u128{lo, hi, lo.subOne(), func() u128 { n, _ := hi.addOne(); return n }()} {
			a := u.addr(v4)
			if a.Is4() == v4 && (v4 || !a.Is4In6()) {
				probes = append(probes, a)
			}
		}
		// One address inside, at random.
		off := u128{rng.Uint64(), rng.Uint64()}.and(hostMask(int(keyOf(p).bits)))
		probes = append(probes, lo.or(off).addr(v4))
	}
	for _, a := range probes {
		want := containing(ps, a)
		var got []netip.Prefix
		for n := tab.lookup(u128From(a)); n >= 0; n = tab.parent[n] {
			p := ps[tab.nodeRules(n)[0]]
			got = append(got, p)
			var rules []int32 // every rule of p, in config order
			for i := range ps {
				if ps[i] == p {
					rules = append(rules, int32(i))
				}
			}
			if !slices.Equal(tab.nodeRules(n), rules) {
				t.Fatalf("%v: the rules of %v are %v, want %v", a, p, tab.nodeRules(n), rules)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%v: got the chain %v, want %v", a, got, want)
		}
	}
	if got, want := tab.covered(), mergeIntervals(ps); !slices.Equal(got, want) {
		t.Errorf("covered: got %v, want %v", got, want)
	}
}

// containing returns the distinct prefixes of ps holding a, longest first.
func containing(ps []netip.Prefix, a netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Contains(a) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(x, y netip.Prefix) int { return y.Bits() - x.Bits() })
	return out
}

// TestPrefixesAgainstHosts checks the routes made from the tables' segments
// against the apps' prefixes minus the exceptions', computed from the parsed
// hosts as the routes were before the tables dropped their prefixes.
func TestPrefixesAgainstHosts(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 17))
	configs := []*Config{e2eConfig(300)}
	for range 50 {
		c := randomConfig(rng)
		for range rng.IntN(3) {
			c.Exceptions.Addresses = append(c.Exceptions.Addresses, randomPrefix(rng).String())
		}
		configs = append(configs, c)
	}
	for i, c := range configs {
		s, err := Compile(c)
		if err != nil {
			t.Fatalf("config %d: %v", i, err)
		}
		ck, _ := check(c)
		var in, minus [2][]netip.Prefix
		for _, a := range ck.apps {
			for _, h := range a.hosts {
				for _, p := range h.Prefixes {
					fam, _ := famKey(p.Addr())
					in[fam] = append(in[fam], p)
				}
			}
		}
		for _, h := range ck.exAddrs {
			for _, p := range h.Prefixes {
				fam, _ := famKey(p.Addr())
				minus[fam] = append(minus[fam], p)
			}
		}
		want := append(subtractPrefixes(in[0], minus[0]), subtractPrefixes(in[1], minus[1])...)
		if got := s.Prefixes(); !slices.Equal(got, want) {
			t.Fatalf("config %d: Prefixes = %v, want %v", i, got, want)
		}
	}
}
