package steering

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Snapshot is a compiled, immutable config: the matcher every lookup uses. It is
// safe for concurrent use; swap whole snapshots (atomic.Pointer) on reload.
type Snapshot struct {
	ex       Exceptions    // defaults applied
	client   ClientConfig  // defaults applied
	apps     []compiledApp // by config index
	meta     []appMeta     // by config index
	text     string        // the apps' strings, each distinct value once (packApps)
	hosts    []strRef      // the hosts of every app in turn, in text
	lists    [][]string    // the apps' distinct publisher and tag lists
	ports    []appPorts    // the distinct port sets of the apps
	portText [][2]string   // the TCP and UDP texts of each of ports
	appCache lazy[App]     // Decision.App by config index, made on first use (appPtr)
	byID     []int32       // indices into apps, sorted by app ID (IDs are unique)
	rules    []rule        // exceptions.domains, exceptions.addresses, then each app's hosts
	nExDom   int32         // the number of domain exceptions, the rules before the address ones
	texts    lazy[string]  // rule texts by rule index, made on first use (ruleText)
	exNames  nameTable
	appNames nameTable
	exAddrs  [2]addrTable // [0] IPv4, [1] IPv6
	appAddrs [2]addrTable
	pinned   []pinnedRule
	pinnedOS map[string][]int32 // OS → indices into pinned, config order
	cache    pinnedCache
	stub     netip.Prefix
	fallbck  []netip.Prefix // client.stub_range_fallbacks
	stub6    netip.Prefix
	warnings []Problem
}

type pinnedRule struct {
	p      *PinnedApp
	re     *Pattern
	action Action
	text   string
	failed string // Reason when the pattern could not decide
}

// Compile validates c, applies the defaults and builds the matcher. c is not
// retained: the snapshot keeps its own compact copy.
func Compile(c *Config) (*Snapshot, error) {
	ck, err := check(c)
	if err != nil {
		return nil, err
	}
	d := c.withDefaults()
	s := &Snapshot{
		ex:       d.Exceptions,
		client:   d.Client,
		byID:     make([]int32, len(c.Apps)),
		pinnedOS: make(map[string][]int32),
		stub:     ck.stub,
		fallbck:  ck.fallbacks,
		stub6:    ck.stub6,
		warnings: ck.warnings,
	}
	s.packApps(c.Apps, ck)
	for i := range s.byID {
		s.byID[i] = int32(i)
	}
	slices.SortFunc(s.byID, func(x, y int32) int { return cmp.Compare(s.appID(x), s.appID(y)) })
	n := len(ck.exDomains) + len(ck.exAddrs)
	for i := range ck.apps {
		n += len(ck.apps[i].hosts)
	}
	s.rules = make([]rule, 0, n)
	s.exNames.host = newHostList(s.ex.Domains, 0)
	s.appNames.host = hostList{text: s.text, hosts: s.hosts, base: int32(len(ck.exDomains) + len(ck.exAddrs))}
	s.buildExceptions(ck)
	s.buildApps(ck)
	s.buildPinned(ck)
	s.texts = newLazy[string](len(s.rules))
	s.appCache = newLazy[App](len(s.apps))
	s.cache.init()
	return s, nil
}

// admits reports whether app (its config index) admits port over proto.
func (s *Snapshot) admits(app int32, proto Protocol, port uint16) bool {
	return s.ports[s.apps[app].ports].admits(proto, port)
}

// addRules appends one rule per spec and returns their (prefix, rule) pairs.
func (s *Snapshot) addRules(app int32, specs []Host, pr *[2][]prefixRule) {
	first := int32(len(s.rules))
	for j, sp := range specs {
		s.rules = append(s.rules, rule{app: app})
		for _, p := range sp.Prefixes {
			fam := 0
			if p.Addr().Is6() {
				fam = 1
			}
			pr[fam] = append(pr[fam], prefixRule{p, first + int32(j)})
		}
	}
}

func (s *Snapshot) buildExceptions(ck *checked) {
	var pr [2][]prefixRule
	base := int32(len(s.rules))
	s.addRules(-1, ck.exDomains, &pr)
	s.nExDom = int32(len(ck.exDomains))
	for j := len(ck.exDomains) - 1; j >= 0; j-- {
		s.exNames.add(base+int32(j), ck.exDomains[j])
	}
	s.exNames.trim()
	s.addRules(-1, ck.exAddrs, &pr)
	for f := range pr {
		s.exAddrs[f] = buildAddrTable(pr[f], f == 0)
	}
}

func (s *Snapshot) buildApps(ck *checked) {
	var pr [2][]prefixRule
	pr[0] = make([]prefixRule, 0, cap(s.rules))
	type named struct {
		r    int32
		spec Host
	}
	var names []named
	for i := range s.apps {
		base := int32(len(s.rules))
		s.apps[i].first = base
		s.addRules(int32(i), ck.apps[i].hosts, &pr)
		for j, sp := range ck.apps[i].hosts {
			if sp.Kind.IsName() {
				names = append(names, named{base + int32(j), sp})
			}
		}
	}
	for i := len(names) - 1; i >= 0; i-- {
		s.appNames.add(names[i].r, names[i].spec)
	}
	s.appNames.trim()
	for f := range pr {
		s.appAddrs[f] = buildAddrTable(pr[f], f == 0)
	}
}

// ruleText returns rule r as the config element it comes from, e.g.
// `apps[2].hosts[0] "*.corp.test"`. The texts are made on first use and kept:
// 50,000 rules' texts would be megabytes that most lookups never need, and a
// rule's second use does not allocate.
func (s *Snapshot) ruleText(r int32) string {
	if t := s.texts.load(r); t != nil {
		return *t
	}
	return *s.texts.keep(r, s.newRuleText(r))
}

func (s *Snapshot) newRuleText(r int32) *string {
	path := "exceptions.addresses"
	switch app := s.rules[r].app; {
	case app >= 0:
		path = "apps[" + strconv.Itoa(int(app)) + "].hosts"
	case r < s.nExDom:
		path = "exceptions.domains"
	}
	v, i := s.source(r)
	t := path + "[" + strconv.Itoa(int(i)) + "] " + strconv.Quote(v)
	return &t
}

// source returns the config element rule r comes from and its index in its
// list.
func (s *Snapshot) source(r int32) (string, int32) {
	switch app := s.rules[r].app; {
	case app >= 0:
		return s.appNames.host.of(r), r - s.apps[app].first
	case r < s.nExDom:
		return s.ex.Domains[r], r
	}
	return s.ex.Addresses[r-s.nExDom], r - s.nExDom
}

func (s *Snapshot) buildPinned(ck *checked) {
	for i := range s.ex.Pinned {
		p := &s.ex.Pinned[i]
		act := Direct
		if p.Action == PinnedBlock {
			act = Block
		}
		text := fmt.Sprintf("exceptions.pinned[%d] %q", i, p.Pattern)
		s.pinned = append(s.pinned, pinnedRule{
			p: p, re: ck.pinned[i], action: act, text: text,
			failed: reasonPinnedFailed + " (" + text + ")",
		})
		s.pinnedOS[p.OS] = append(s.pinnedOS[p.OS], int32(i))
	}
}

// Warnings returns the config's ties and shadowed rules (see Config.Warnings).
func (s *Snapshot) Warnings() []Problem { return slices.Clone(s.warnings) }

// StubRange returns the prefix stub addresses come from.
func (s *Snapshot) StubRange() netip.Prefix { return s.stub }

// StubRangeFallbacks returns the prefixes to take stub addresses from, in
// order, when the stub range is routed elsewhere.
func (s *Snapshot) StubRangeFallbacks() []netip.Prefix { return slices.Clone(s.fallbck) }

// WithStubRange returns c with its stub range replaced by stub (the
// fallback the agent chose) and no fallbacks left, for Compile. c is not
// modified.
func WithStubRange(c *Config, stub netip.Prefix) *Config {
	cp := *c
	cp.Client.StubRange = stub.String()
	cp.Client.StubRangeFallbacks = nil
	return &cp
}

// Prefixes returns the real prefixes of the apps' address, CIDR and range hosts,
// minus the address exceptions, as minimal sorted CIDRs: the routes the agent
// points into the TUN (the stub range is separate, see StubRange). They are
// computed on each call (a few milliseconds at 10,000 apps) rather than kept:
// the agent asks when it sets its routes, and they are tens of thousands of
// prefixes.
func (s *Snapshot) Prefixes() []netip.Prefix { return routePrefixes(&s.appAddrs, &s.exAddrs) }
