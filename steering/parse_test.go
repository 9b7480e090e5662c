package steering

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		in       string
		kind     HostKind
		name     string
		prefixes string // space-separated
		err      string
	}{
		{in: "wiki.corp.example", kind: HostName, name: "wiki.corp.example"},
		{in: "Wiki.Corp.Example.", kind: HostName, name: "wiki.corp.example"},
		{in: "intranet", kind: HostName, name: "intranet"},
		{in: "_ldap._tcp.corp.example", kind: HostName, name: "_ldap._tcp.corp.example"},
		{in: "*.corp.example", kind: HostWildcard, name: "corp.example"},
		{in: "10.1.2.3", kind: HostAddr, prefixes: "10.1.2.3/32"},
		{in: "fd00::5", kind: HostAddr, prefixes: "fd00::5/128"},
		{in: "10.2.0.0/16", kind: HostCIDR, prefixes: "10.2.0.0/16"},
		{in: "fd00:1::/48", kind: HostCIDR, prefixes: "fd00:1::/48"},
		{in: "10.1.0.10-10.1.0.90", kind: HostRange, prefixes: "10.1.0.10/31 10.1.0.12/30 10.1.0.16/28 10.1.0.32/27 10.1.0.64/28 10.1.0.80/29 10.1.0.88/31 10.1.0.90/32"},
		{in: "10.0.0.0-10.0.255.255", kind: HostRange, prefixes: "10.0.0.0/16"},
		{in: "0.0.0.0-255.255.255.255", kind: HostRange, prefixes: "0.0.0.0/0"},
		{in: "fd00::-fd00::3", kind: HostRange, prefixes: "fd00::/126"},
		{in: "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", kind: HostRange, prefixes: "::/0"},
		{in: "10.0.0.5-10.0.0.5", kind: HostRange, prefixes: "10.0.0.5/32"},
		// Where the tenant's former parser (enroll/hostmatch.go) differed, the
		// agent's reading stands: a '-' makes a range only after an address...
		{in: "x.10-b.corp.test", kind: HostName, name: "x.10-b.corp.test"},
		{in: "Web-1.Corp.Example", kind: HostName, name: "web-1.corp.example"},
		// ...an address never becomes a name by a trailing dot, no last label
		// is numeric, and IPv4-mapped addresses are refused in CIDRs and ranges too.
		{in: "10.0.0.1.", err: "invalid IP address"},
		{in: "0a.0.", err: "last label is numeric"},
		{in: "::ffff:10.0.0.0/104", err: "IPv4-mapped"},
		{in: "::ffff:10.0.0.1-::ffff:10.0.0.9", err: "IPv4-mapped"},
		{in: "10.0.0.0/33", err: "prefix length out of range"},
		{in: "10.0.0.1/8", err: "host bits set (did you mean 10.0.0.0/8?)"},
		{in: "10.0.0.0/", err: "invalid prefix length"},
		{in: "10.0.0.0/08", err: "invalid prefix length"},
		{in: "10.0.0.256", err: "invalid IP address"},
		{in: "10.0.0", err: "invalid IP address"},
		{in: "fe80::1%eth0", err: "IPv6 zones are not allowed"},
		{in: "::ffff:10.0.0.1", err: "IPv4-mapped"},
		{in: "10.0.0.9-10.0.0.1", err: "range end is before its start"},
		{in: "10.0.0.1-fd00::1", err: "range mixes IPv4 and IPv6"},
		{in: "10.0.0.1-x", err: "range end: invalid IP address"},
		{in: "", err: "empty host"},
		{in: " wiki.corp", err: "leading or trailing space"},
		{in: "*", err: `"*" is only allowed`},
		{in: "a.*.corp", err: `"*" is only allowed`},
		{in: "*.", err: "empty name"},
		{in: "a..b", err: "empty label"},
		{in: "-a.corp", err: "starts or ends with '-'"},
		{in: "a b.corp", err: "invalid character"},
		{in: "wiki.123", err: "last label is numeric"},
		{in: strings.Repeat("a", 64) + ".corp", err: "label longer than 63"},
		{in: strings.Repeat("abcdefghi.", 26) + "corp", err: "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHost(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseHost(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseHost(%q): %v", tt.in, err)
			}
			if got.Kind != tt.kind || got.Name != tt.name {
				t.Errorf("parseHost(%q) = %v %q, want %v %q", tt.in, got.Kind, got.Name, tt.kind, tt.name)
			}
			if ps := prefixString(got.Prefixes); ps != tt.prefixes {
				t.Errorf("prefixes = %s, want %s", ps, tt.prefixes)
			}
		})
	}
}

func prefixString(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "", want: ""},
		{in: "443", want: "443"},
		{in: "22,80,443,8000-8099", want: "22,80,443,8000-8099"},
		{in: " 443 , 80 ", want: "80,443"},
		{in: "80,81,82-90,85", want: "80-90"},
		{in: "*", want: "1-65535"},
		{in: "1-65535", want: "1-65535"},
		{in: "0", err: "port 0"},
		{in: "65536", err: "invalid port"},
		{in: "80,", err: "empty item"},
		{in: "90-80", err: "ends before it starts"},
		{in: "+80", err: "invalid port"},
		{in: "http", err: "invalid port"},
		{in: "80-", err: "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parsePorts(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parsePorts(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("parsePorts(%q) = %q, %v; want %q", tt.in, got.String(), err, tt.want)
			}
		})
	}
}

func TestPortSetContainsOverlaps(t *testing.T) {
	s, _ := parsePorts("22,80,443,8000-8099")
	for p, want := range map[uint16]bool{22: true, 21: false, 443: true, 8000: true, 8099: true, 8100: false, 65535: false} {
		if s.contains(p) != want {
			t.Errorf("contains(%d) = %v", p, !want)
		}
	}
	a, _ := parsePorts("1-100")
	b, _ := parsePorts("100-200")
	c, _ := parsePorts("101-200")
	if !a.overlaps(b) || a.overlaps(c) || a.overlaps(nil) {
		t.Error("overlaps wrong")
	}
}

// checkRange verifies rangePrefixes' output: consecutive, aligned, exactly
// covering [lo, hi].
func checkRange(t *testing.T, lo, hi netip.Addr, ps []netip.Prefix) {
	t.Helper()
	next := lo
	for _, p := range ps {
		if p.Masked() != p || p.Addr() != next {
			t.Fatalf("range %s-%s: prefix %s is not canonical or not contiguous (want start %s)", lo, hi, p, next)
		}
		_, last, _ := prefixBounds(p)
		next = last.addr(lo.Is4()).Next()
	}
	if _, last, _ := prefixBounds(ps[len(ps)-1]); last.addr(lo.Is4()) != hi {
		t.Fatalf("range %s-%s ends at %s", lo, hi, last.addr(lo.Is4()))
	}
	// Minimality: no two neighbours could merge into one aligned prefix.
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1], ps[i]
		if a.Bits() == b.Bits() && a.Bits() > 0 {
			if m, _ := a.Addr().Prefix(a.Bits() - 1); m.Addr() == a.Addr() {
				t.Fatalf("range %s-%s: %s and %s should be one prefix", lo, hi, a, b)
			}
		}
	}
}

func TestRangePrefixes(t *testing.T) {
	cases := [][2]string{
		{"10.0.0.1", "10.0.0.254"}, {"0.0.0.0", "0.0.0.0"}, {"255.255.255.255", "255.255.255.255"},
		{"0.0.0.1", "255.255.255.254"}, {"fd00::1", "fd00::1:0"}, {"::1", "ffff::"},
	}
	for _, c := range cases {
		lo, hi := netip.MustParseAddr(c[0]), netip.MustParseAddr(c[1])
		checkRange(t, lo, hi, rangePrefixes(lo, hi))
	}
}

func TestSubtractPrefixes(t *testing.T) {
	mp := func(s string) []netip.Prefix {
		var out []netip.Prefix
		for _, f := range strings.Fields(s) {
			out = append(out, netip.MustParsePrefix(f))
		}
		return out
	}
	tests := []struct{ in, minus, want string }{
		{"10.0.0.0/24", "", "10.0.0.0/24"},
		{"10.0.0.0/24", "10.0.0.0/25", "10.0.0.128/25"},
		{"10.0.0.0/24", "10.0.0.64/26", "10.0.0.0/26 10.0.0.128/25"},
		{"10.0.0.0/24 10.0.1.0/24", "10.0.0.0/23", ""},
		{"10.0.0.0/24 10.0.1.0/24", "", "10.0.0.0/23"},
		{"10.0.0.0/24 10.0.2.0/24", "10.0.0.128/25 10.0.1.0/24 10.0.2.0/25", "10.0.0.0/25 10.0.2.128/25"},
		{"fd00::/64", "fd00::/65", "fd00::8000:0:0:0/65"},
	}
	for _, tt := range tests {
		got := prefixString(subtractPrefixes(mp(tt.in), mp(tt.minus)))
		if got != tt.want {
			t.Errorf("subtract(%s - %s) = %q, want %q", tt.in, tt.minus, got, tt.want)
		}
	}
}

func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"wiki.corp.example", "*.corp.example", "10.0.0.1", "10.0.0.0/8", "10.0.0.1-10.0.0.9",
		"fd00::/48", "fd00::1-fd00::ff", "10.0.0.0/33", "a..b", "*.", "::ffff:1.2.3.4", "1.2.3.4-::1", "", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHost(s)
		if err != nil {
			return
		}
		switch h.Kind {
		case HostName, HostWildcard:
			if h.Name == "" || h.Name != strings.ToLower(h.Name) || len(h.Prefixes) != 0 {
				t.Fatalf("parseHost(%q) = %+v", s, h)
			}
			if h2, err := ParseHost(h.Name); err != nil || h2.Name != h.Name {
				t.Fatalf("normalised name %q does not reparse: %v", h.Name, err)
			}
		default:
			if len(h.Prefixes) == 0 {
				t.Fatalf("parseHost(%q): no prefixes", s)
			}
			for _, p := range h.Prefixes {
				if !p.IsValid() || p.Masked() != p {
					t.Fatalf("parseHost(%q): bad prefix %s", s, p)
				}
			}
		}
	})
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"", "*", "443", "22,80,443,8000-8099", "0", "65535", "1-65535", "5-1", ",", "80 , 81"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parsePorts(s)
		if err != nil {
			return
		}
		for i, r := range ps {
			if r.lo == 0 || r.hi < r.lo || (i > 0 && uint32(r.lo) <= uint32(ps[i-1].hi)+1) {
				t.Fatalf("parsePorts(%q) = %v: not sorted, merged and valid", s, ps)
			}
		}
		again, err := parsePorts(ps.String())
		if err != nil || !slices.Equal(again, ps) {
			t.Fatalf("parsePorts(%q) = %v does not round-trip: %v %v", s, ps, again, err)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, []byte{10, 0, 0, 200})
	f.Add([]byte{0, 0, 0, 0}, []byte{255, 255, 255, 255})
	f.Add(make([]byte, 16), append(make([]byte, 15), 7))
	f.Add([]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		lo, ok1 := netip.AddrFromSlice(a)
		hi, ok2 := netip.AddrFromSlice(b)
		if !ok1 || !ok2 {
			return
		}
		l, h, err := parseRange(lo.String(), hi.String())
		if err != nil {
			return
		}
		checkRange(t, l, h, rangePrefixes(l, h))
	})
}
