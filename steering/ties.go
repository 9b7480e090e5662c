package steering

import "fmt"

// claim is one rule's claim on a name or prefix, for tie detection.
type claim struct {
	app, host int32
}

// claims holds the claims on one key; nearly every key has one, so the first is
// stored inline and only real collisions allocate.
type claims struct {
	first claim
	more  []claim
}

// findTies warns where two apps claim the same name or the same prefix for
// overlapping ports (the earlier app wins), where an exception hides an app rule,
// and where an exception repeats another. Different prefixes that merely overlap
// are not ties: the longest prefix wins.
func (ck *checked) findTies(c *Config) {
	n := 0
	for i := range ck.apps {
		n += len(ck.apps[i].hosts)
	}
	names := make(map[string]claims, n)
	prefixes := make(map[pkey]claims, n)
	for i := range ck.apps {
		for j, s := range ck.apps[i].hosts {
			cl := claim{int32(i), int32(j)}
			switch s.Kind {
			case HostName, HostWildcard:
				tie(ck, c, names, nameKey(s), cl)
			case HostAddr, HostCIDR, HostRange:
				for _, p := range s.Prefixes {
					if tie(ck, c, prefixes, keyOf(p), cl) {
						break
					}
				}
			}
		}
	}
	exNames := make(map[string]int)
	for i, s := range ck.exDomains {
		if s.Name == "" {
			continue // invalid, already reported
		}
		path := fmt.Sprintf("exceptions.domains[%d]", i)
		if cl, ok := names[nameKey(s)]; ok {
			ck.shadow(c, path, c.Exceptions.Domains[i], cl.first)
		}
		if k, dup := exNames[nameKey(s)]; dup {
			ck.warnf(path, c.Exceptions.Domains[i], "duplicate of exceptions.domains[%d]", k)
		}
		exNames[nameKey(s)] = i
	}
	for i, s := range ck.exAddrs {
		for _, p := range s.Prefixes {
			if cl, ok := prefixes[keyOf(p)]; ok {
				ck.shadow(c, fmt.Sprintf("exceptions.addresses[%d]", i), c.Exceptions.Addresses[i], cl.first)
				break
			}
		}
	}
}

func nameKey(s Host) string {
	if s.Kind == HostWildcard {
		return "*." + s.Name
	}
	return s.Name
}

// tie records cl under key and warns if an earlier claim on the same key is a
// duplicate in the same app or another app's claim for overlapping ports. It
// reports whether it warned.
func tie[K comparable](ck *checked, c *Config, m map[K]claims, key K, cl claim) bool {
	cs, ok := m[key]
	if !ok {
		m[key] = claims{first: cl}
		return false
	}
	warned := ck.tieWith(c, cs.first, cl)
	for _, prev := range cs.more {
		if warned {
			break
		}
		warned = ck.tieWith(c, prev, cl)
	}
	cs.more = append(cs.more, cl)
	m[key] = cs
	return warned
}

func (ck *checked) tieWith(c *Config, prev, cl claim) bool {
	path := fmt.Sprintf("apps[%d].hosts[%d]", cl.app, cl.host)
	if prev.app == cl.app {
		ck.warnf(path, c.Apps[cl.app].Hosts[cl.host], "duplicate of apps[%d].hosts[%d]", prev.app, prev.host)
		return true
	}
	a, b := &ck.apps[prev.app], &ck.apps[cl.app]
	if a.tcp.overlaps(b.tcp) || a.udp.overlaps(b.udp) {
		ck.warnf(path, c.Apps[cl.app].Hosts[cl.host],
			"tie with apps[%d].hosts[%d] %q on overlapping ports; apps[%d] (%s) wins because it comes first",
			prev.app, prev.host, c.Apps[prev.app].Hosts[prev.host], prev.app, c.Apps[prev.app].ID)
		return true
	}
	return false
}

// shadow warns that an exception hides the app rule cl.
func (ck *checked) shadow(c *Config, path, value string, cl claim) {
	ck.warnf(path, value, "exception overrides apps[%d].hosts[%d] %q (%s): exceptions are decided first",
		cl.app, cl.host, c.Apps[cl.app].Hosts[cl.host], c.Apps[cl.app].ID)
}
