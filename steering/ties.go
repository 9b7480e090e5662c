package steering

import (
	"fmt"
	"net/netip"
)

// claim is one rule's claim on a name or prefix, for tie detection.
type claim struct {
	app, host int
}

// findTies warns where two apps claim the same name or the same prefix for
// overlapping ports (the earlier app wins), where an exception hides an app rule,
// and where an exception repeats another. Different prefixes that merely overlap
// are not ties: the longest prefix wins.
func (ck *checked) findTies(c *Config) {
	names := make(map[string][]claim)
	prefixes := make(map[netip.Prefix][]claim)
	for i := range ck.apps {
		for j, s := range ck.apps[i].hosts {
			switch s.kind {
			case hostExact, hostWildcard:
				k := nameKey(s)
				tie(ck, c, names, k, claim{i, j})
			case hostAddr, hostPrefix, hostRange:
				for _, p := range s.prefixes {
					if tie(ck, c, prefixes, p, claim{i, j}) {
						break
					}
				}
			}
		}
	}
	exNames := make(map[string]int)
	for i, s := range ck.exDomains {
		if s.name == "" {
			continue // invalid, already reported
		}
		ck.shadow(c, fmt.Sprintf("exceptions.domains[%d]", i), c.Exceptions.Domains[i], names[nameKey(s)])
		if k, dup := exNames[nameKey(s)]; dup {
			ck.warnf(fmt.Sprintf("exceptions.domains[%d]", i), c.Exceptions.Domains[i], "duplicate of exceptions.domains[%d]", k)
		}
		exNames[nameKey(s)] = i
	}
	for i, s := range ck.exAddrs {
		for _, p := range s.prefixes {
			if cl := prefixes[p]; len(cl) > 0 {
				ck.shadow(c, fmt.Sprintf("exceptions.addresses[%d]", i), c.Exceptions.Addresses[i], cl)
				break
			}
		}
	}
}

func nameKey(s hostSpec) string {
	if s.kind == hostWildcard {
		return "*." + s.name
	}
	return s.name
}

// tie records cl under key and warns if an earlier app claims the same key for
// overlapping ports. It reports whether it warned.
func tie[K comparable](ck *checked, c *Config, m map[K][]claim, key K, cl claim) bool {
	warned := false
	for _, prev := range m[key] {
		if prev.app == cl.app {
			ck.warnf(fmt.Sprintf("apps[%d].hosts[%d]", cl.app, cl.host), c.Apps[cl.app].Hosts[cl.host],
				"duplicate of apps[%d].hosts[%d]", prev.app, prev.host)
			warned = true
			break
		}
		a, b := &ck.apps[prev.app], &ck.apps[cl.app]
		if a.tcp.overlaps(b.tcp) || a.udp.overlaps(b.udp) {
			ck.warnf(fmt.Sprintf("apps[%d].hosts[%d]", cl.app, cl.host), c.Apps[cl.app].Hosts[cl.host],
				"tie with apps[%d].hosts[%d] %q on overlapping ports; apps[%d] (%s) wins because it comes first",
				prev.app, prev.host, c.Apps[prev.app].Hosts[prev.host], prev.app, c.Apps[prev.app].ID)
			warned = true
			break
		}
	}
	m[key] = append(m[key], cl)
	return warned
}

// shadow warns that an exception hides the app rules in cl.
func (ck *checked) shadow(c *Config, path, value string, cl []claim) {
	if len(cl) == 0 {
		return
	}
	ck.warnf(path, value, "exception overrides apps[%d].hosts[%d] %q (%s): exceptions are decided first",
		cl[0].app, cl[0].host, c.Apps[cl[0].app].Hosts[cl[0].host], c.Apps[cl[0].app].ID)
}
