package steering

import (
	"net/netip"
)

// AppMatcher answers whether a host and a port lie inside one app's
// definition: the check the PoP makes before it carries a flow the agent says
// belongs to the app, and before it resolves a name through the app's
// publishers. It reads the app with the grammar and the tables the agent
// steers with, so the two cannot disagree on what an app covers. Unlike a
// Snapshot it knows nothing of other apps, exceptions or specificity: it
// answers membership only. It is immutable and safe for concurrent use, and
// its lookups do not allocate.
type AppMatcher struct {
	names nameTable
	// addrs holds the addresses of the app's address, CIDR and range hosts as
	// sorted, merged intervals: [0] IPv4, [1] IPv6.
	addrs [2][]interval
	appPorts
}

// CompileApp parses a's hosts and ports for an AppMatcher. Problems are a
// *ValidationError as Config.Validate reports them, with paths relative to the
// app ("hosts[1]", "tcp"); only what the app covers is checked here, the rest
// of an app (its id, its tunnel, the stub range) by Config.Validate.
func CompileApp(a *App) (*AppMatcher, error) {
	ck := &checked{}
	ca := ck.checkScope("", a)
	if len(ck.problems) > 0 {
		return nil, &ValidationError{Problems: ck.problems}
	}
	m := &AppMatcher{appPorts: ca.appPorts}
	m.names.host = newHostList(a.Hosts, 0)
	var prefixes [2][]netip.Prefix
	for j, h := range ca.hosts {
		if h.Kind.IsName() {
			m.names.add(int32(j), h)
		}
		for _, p := range h.Prefixes {
			fam, _ := famKey(p.Addr())
			prefixes[fam] = append(prefixes[fam], p)
		}
	}
	m.names.trim()
	for fam := range prefixes {
		m.addrs[fam] = mergeIntervals(prefixes[fam])
	}
	return m, nil
}

// MatchHost reports whether host, as a CONNECT authority names it (a DNS name
// or an address literal, without brackets or a zone), lies inside the app. A
// name matches only the app's name and wildcard hosts, an address only its
// address, CIDR and range hosts: the PoP checks what the client asked for, and
// the publisher resolves it.
func (m *AppMatcher) MatchHost(host string) bool {
	if !looksLikeAddr(host) {
		return m.MatchName(host)
	}
	// An address literal that does not parse is no host of any app; a name
	// cannot look like an address (its last label is never numeric).
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return false
	}
	return m.MatchAddr(a)
}

// MatchName reports whether the DNS name lies inside the app's name and
// wildcard hosts, as Snapshot.MatchName reads names: case does not matter, a
// trailing dot is ignored, a wildcard covers every depth below its domain but
// not the domain itself, and a name longer than 253 bytes or with an empty
// label matches nothing.
func (m *AppMatcher) MatchName(name string) bool {
	var buf [maxName]byte
	n, ok := normName(&buf, name)
	if !ok {
		return false
	}
	r, _ := m.names.lookup(buf[:n], nil, nil)
	return r >= 0
}

// MatchAddr reports whether a lies inside the app's address, CIDR and range
// hosts; an IPv4-mapped IPv6 address is read as the IPv4 address, as flows are.
func (m *AppMatcher) MatchAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	fam, key := famKey(a.Unmap())
	iv := m.addrs[fam]
	lo, hi := 0, len(iv) // first interval that ends at or after key
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if iv[mid].hi.less(key) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(iv) && !key.less(iv[lo].lo)
}

// Admits reports whether the app uses port over protocol p.
func (m *AppMatcher) Admits(p Protocol, port uint16) bool { return m.admits(p, port) }
