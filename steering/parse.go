package steering

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// HostKind says what an app host (or an exception entry) is.
type HostKind uint8

// The kinds of host, in the grammar documented on App.Hosts.
const (
	HostName     HostKind = iota // an exact DNS name: wiki.corp.example
	HostWildcard                 // any name below a domain: *.corp.example
	HostAddr                     // one address: 10.0.0.1, fd00::1
	HostCIDR                     // a canonical CIDR: 10.0.0.0/8
	HostRange                    // an inclusive address range: 10.0.0.1-10.0.0.9
)

func (k HostKind) String() string {
	return [...]string{"exact name", "wildcard", "address", "CIDR", "range"}[k]
}

// IsName reports whether hosts of kind k are names (exact or wildcard), which
// match DNS names, rather than addresses.
func (k HostKind) IsName() bool { return k == HostName || k == HostWildcard }

func (k HostKind) withArticle() string {
	if k == HostName || k == HostAddr {
		return "an " + k.String()
	}
	return "a " + k.String()
}

// Host is one parsed host entry.
type Host struct {
	Kind HostKind
	// Name is the normalised name of a name or wildcard (lower case, no trailing
	// dot); for a wildcard it is the domain below which names match, without
	// "*.". It is empty for addresses.
	Name string
	// Prefixes covers the addresses of an address, CIDR or range, as minimal
	// CIDRs; it is empty for names.
	Prefixes []netip.Prefix
}

// ParseHost parses one host entry as App.Hosts, Exceptions.Domains and
// Exceptions.Addresses write it: an exact name, "*.domain", an address, a
// canonical CIDR or an inclusive range "a-b". It is the one grammar every part
// of ztagent reads hosts with. Errors are reasons, without the value.
func ParseHost(s string) (Host, error) {
	if s == "" {
		return Host{}, errors.New("empty host")
	}
	if strings.TrimSpace(s) != s {
		return Host{}, errors.New("leading or trailing space")
	}
	if strings.Contains(s, "/") {
		p, err := parseCIDR(s)
		if err != nil {
			return Host{}, err
		}
		return Host{Kind: HostCIDR, Prefixes: []netip.Prefix{p}}, nil
	}
	if a, b, ok := strings.Cut(s, "-"); ok && looksLikeAddr(a) {
		lo, hi, err := parseRange(a, b)
		if err != nil {
			return Host{}, err
		}
		return Host{Kind: HostRange, Prefixes: rangePrefixes(lo, hi)}, nil
	}
	if looksLikeAddr(s) {
		a, err := parseAddr(s)
		if err != nil {
			return Host{}, err
		}
		return Host{Kind: HostAddr, Prefixes: []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}}, nil
	}
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		n, err := parseName(rest)
		if err != nil {
			return Host{}, err
		}
		return Host{Kind: HostWildcard, Name: n}, nil
	}
	n, err := parseName(s)
	if err != nil {
		return Host{}, err
	}
	return Host{Kind: HostName, Name: n}, nil
}

// looksLikeAddr reports whether s is meant as an address: it contains a colon
// (IPv6) or consists only of digits and dots (IPv4).
func looksLikeAddr(s string) bool {
	if strings.Contains(s, ":") {
		return true
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// parseAddr parses an address as configs may write it: no zone, no 4in6.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errors.New("invalid IP address")
	}
	if a.Zone() != "" {
		return netip.Addr{}, errors.New("IPv6 zones are not allowed")
	}
	if a.Is4In6() {
		return netip.Addr{}, errors.New("IPv4-mapped IPv6 address: write the IPv4 form")
	}
	return a, nil
}

// parseCIDR parses "addr/bits" and insists on the canonical (masked) form, so a
// typo in the address cannot silently widen a rule.
func parseCIDR(s string) (netip.Prefix, error) {
	as, bs, _ := strings.Cut(s, "/")
	a, err := parseAddr(as)
	if err != nil {
		return netip.Prefix{}, err
	}
	n, err := strconv.Atoi(bs)
	if err != nil || bs == "" || bs[0] == '+' || bs[0] == '-' || (len(bs) > 1 && bs[0] == '0') {
		return netip.Prefix{}, errors.New("invalid prefix length")
	}
	if n > a.BitLen() {
		return netip.Prefix{}, errors.New("prefix length out of range")
	}
	p := netip.PrefixFrom(a, n)
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits set (did you mean %s?)", m)
	}
	return p, nil
}

// parseRange parses the two ends of an inclusive address range.
func parseRange(a, b string) (lo, hi netip.Addr, err error) {
	if lo, err = parseAddr(a); err != nil {
		return lo, hi, fmt.Errorf("range start: %w", err)
	}
	if hi, err = parseAddr(b); err != nil {
		return lo, hi, fmt.Errorf("range end: %w", err)
	}
	if lo.Is4() != hi.Is4() {
		return lo, hi, errors.New("range mixes IPv4 and IPv6")
	}
	if hi.Less(lo) {
		return lo, hi, errors.New("range end is before its start")
	}
	return lo, hi, nil
}

// parseName validates a DNS name (labels of letters, digits, '-' and '_', at most
// 63 bytes each, 253 in all, trailing dot allowed) and returns it normalised.
func parseName(s string) (string, error) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", errors.New("empty name")
	}
	if len(s) > 253 {
		return "", errors.New("name longer than 253 bytes")
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", err
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return "", errors.New("last label is numeric (an IP address cannot be a name)")
	}
	return strings.ToLower(s), nil
}

func checkLabel(l string) error {
	switch {
	case l == "":
		return errors.New("empty label")
	case l == "*":
		return errors.New(`"*" is only allowed as the whole first label ("*.domain")`)
	case len(l) > 63:
		return errors.New("label longer than 63 bytes")
	case l[0] == '-' || l[len(l)-1] == '-':
		return errors.New("label starts or ends with '-'")
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("invalid character %q in name", c)
		}
	}
	return nil
}

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

// portSet is a set of ports as sorted, merged, disjoint ranges. The empty set
// means the protocol is not used.
type portSet []portRange

// contains reports whether port p is in the set; sets are short, so a linear
// scan beats a binary search in practice.
func (s portSet) contains(p uint16) bool {
	for _, r := range s {
		if p < r.lo {
			return false
		}
		if p <= r.hi {
			return true
		}
	}
	return false
}

func (s portSet) overlaps(t portSet) bool {
	i, j := 0, 0
	for i < len(s) && j < len(t) {
		if s[i].hi < t[j].lo {
			i++
		} else if t[j].hi < s[i].lo {
			j++
		} else {
			return true
		}
	}
	return false
}

// appPorts are an app's port sets, one per protocol.
type appPorts struct{ tcp, udp portSet }

// admits reports whether port p over protocol proto is in the app's sets.
func (a *appPorts) admits(proto Protocol, p uint16) bool {
	switch proto {
	case TCP:
		return a.tcp.contains(p)
	case UDP:
		return a.udp.contains(p)
	}
	return false
}

// parsePorts parses a port set: "" (none), "*" (all), or a comma-separated list
// of ports and inclusive ranges, e.g. "22,80,443,8000-8099". Port 0 is invalid.
func parsePorts(s string) (portSet, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	if strings.TrimSpace(s) == "*" {
		return portSet{{1, 65535}}, nil
	}
	var set portSet
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, errors.New("empty item in port list")
		}
		a, b, isRange := strings.Cut(item, "-")
		lo, err := ParsePort(strings.TrimSpace(a))
		if err != nil {
			return nil, err
		}
		hi := lo
		if isRange {
			if hi, err = ParsePort(strings.TrimSpace(b)); err != nil {
				return nil, err
			}
			if hi < lo {
				return nil, fmt.Errorf("port range %q ends before it starts", item)
			}
		}
		set = append(set, portRange{lo, hi})
	}
	return set.normalize(), nil
}

// ParsePort parses one port number, 1-65535, in decimal without a sign: the
// port grammar of app port sets, also used for the ports of addresses such as
// the PoP's and the tenant API's.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	if n == 0 {
		return 0, errors.New("port 0 is not a valid port")
	}
	return uint16(n), nil
}

// normalize sorts and merges overlapping or adjacent ranges.
func (s portSet) normalize() portSet {
	slices.SortFunc(s, func(a, b portRange) int { return int(a.lo) - int(b.lo) })
	out := s[:0]
	for _, r := range s {
		if n := len(out); n > 0 && uint32(r.lo) <= uint32(out[n-1].hi)+1 {
			if r.hi > out[n-1].hi {
				out[n-1].hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func (s portSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(r.lo)))
		if r.hi != r.lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(r.hi)))
		}
	}
	return b.String()
}
