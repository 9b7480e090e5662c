package tenant

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// compiledApp is an app with its hosts and ports parsed, for the PoP's check that
// a requested host:port lies inside the app's definition. The grammar is the one
// documented on steering.App.
type compiledApp struct {
	app      *steering.App
	names    map[string]bool // exact FQDNs, lower case, no trailing dot
	suffixes []string        // from "*.corp.example": ".corp.example"
	prefixes []netip.Prefix  // single addresses are /32 or /128
	ranges   []addrRange
	tcp, udp portSet
}

type addrRange struct{ lo, hi netip.Addr }

// portSet is a list of inclusive ranges; empty means no port.
type portSet []portRange

type portRange struct{ lo, hi uint16 }

func (s portSet) contains(p uint16) bool {
	for _, r := range s {
		if p >= r.lo && p <= r.hi {
			return true
		}
	}
	return false
}

// parsePortSet parses "22,80,443,8000-8099" or "*". The empty string is the empty
// set.
func parsePortSet(s string) (portSet, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if s == "*" {
		return portSet{{1, 65535}}, nil
	}
	var set portSet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		l, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		h := l
		if isRange {
			if h, err = parsePort(hi); err != nil {
				return nil, err
			}
			if h < l {
				return nil, fmt.Errorf("port range %q runs backwards", part)
			}
		}
		set = append(set, portRange{l, h})
	}
	return set, nil
}

func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}

// addHost parses one entry of steering.App.Hosts into c.
func (c *compiledApp) addHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if strings.TrimSpace(h) != h {
		return errors.New("leading or trailing space")
	}
	if strings.Contains(h, "/") {
		p, err := netip.ParsePrefix(h)
		if err != nil {
			return errors.New("invalid CIDR")
		}
		if p.Masked() != p {
			return fmt.Errorf("CIDR has host bits set (did you mean %s?)", p.Masked())
		}
		c.prefixes = append(c.prefixes, p)
		return nil
	}
	if lo, hi, ok := strings.Cut(h, "-"); ok && looksLikeIP(lo) {
		l, err1 := netip.ParseAddr(lo)
		u, err2 := netip.ParseAddr(hi)
		switch {
		case err1 != nil || err2 != nil || l.Zone() != "" || u.Zone() != "":
			return errors.New("invalid address range (use e.g. 10.1.0.10-10.1.0.90)")
		case l.Is4() != u.Is4():
			return errors.New("address range mixes IPv4 and IPv6")
		case u.Less(l):
			return errors.New("address range runs backwards")
		}
		c.ranges = append(c.ranges, addrRange{l, u})
		return nil
	}
	if looksLikeIP(h) {
		a, err := netip.ParseAddr(h)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return errors.New("invalid IP address (no zones, IPv4 in IPv4 form)")
		}
		c.prefixes = append(c.prefixes, netip.PrefixFrom(a, a.BitLen()))
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		if err := tenantapi.CheckDNSName(rest); err != nil {
			return fmt.Errorf("invalid wildcard: %w", err)
		}
		c.suffixes = append(c.suffixes, "."+rest)
		return nil
	}
	if err := tenantapi.CheckDNSName(name); err != nil {
		return err
	}
	c.names[name] = true
	return nil
}

// looksLikeIP tells addresses from names: IPv6 has a colon, and no top-level
// domain is all digits, so a string whose last label is all digits is meant as
// IPv4.
func looksLikeIP(s string) bool {
	if strings.Contains(s, ":") {
		return true
	}
	last := s[strings.LastIndexByte(s, '.')+1:]
	if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// matchHost reports whether host (an FQDN or an IP literal, IPv6 optionally in
// brackets) lies inside the app's hosts. A name never matches an address entry:
// the PoP checks what the client asked for, and the publisher resolves it.
func (c *compiledApp) matchHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	// looksLikeIP first: a failed ParseAddr allocates its error on every flow.
	if !looksLikeIP(host) {
		return c.matchName(host)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return false
		}
		a = a.Unmap()
		for _, p := range c.prefixes {
			if p.Contains(a) {
				return true
			}
		}
		for _, r := range c.ranges {
			if a.Is4() == r.lo.Is4() && !a.Less(r.lo) && !r.hi.Less(a) {
				return true
			}
		}
		return false
	}
	return c.matchName(host)
}

func (c *compiledApp) matchName(host string) bool {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if c.names[name] {
		return true
	}
	for _, s := range c.suffixes {
		if len(name) > len(s) && strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// ports returns the port set for proto ("tcp" or "udp").
func (c *compiledApp) ports(proto string) (portSet, bool) {
	switch strings.ToLower(proto) {
	case "tcp":
		return c.tcp, true
	case "udp":
		return c.udp, true
	}
	return nil, false
}
