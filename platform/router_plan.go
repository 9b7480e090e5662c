package platform

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// The router's pure half, the same on every OS: what the agent wants in the
// OS routing (compile), which of it someone else already has there (claim),
// and the ordered changes from what the journal says the agent added to what
// it wants (plan). The OS halves (router_linux.go: netlink; router_windows.go:
// winipcfg; router_darwin.go: ifconfig/route) read the OS and apply the
// changes; this half is tested on any OS, without root.

// Linux: the agent's routes live in table routeTable, looked up by a rule of
// priority rulePriority for every packet without the bypass mark; routeProto
// marks them (`ip route show table 122 proto 0x7a`).
const (
	routeTable   = 122
	rulePriority = 5270
	routeProto   = 0x7a
)

// Address families as the journal records them: Linux's values, whatever
// the OS (only Linux journals rules, which carry one).
const (
	afInet  = 2
	afInet6 = 10
)

// routerJournalName is the router's journal file in the state directory.
const routerJournalName = "routes.journal"

// routerState is a set of rules, addresses and routes the agent added to the
// OS, or wants to. The journal holds one: a superset of what the agent's
// changes may have left in the OS, written before each change, so that a
// repair removes exactly that and never anything else.
type routerState struct {
	Version int        `json:"version"`
	Rules   []ruleSpec `json:"rules,omitempty"`
	Links   []linkSpec `json:"links,omitempty"`
}

// ruleSpec is a policy routing rule with no selector but the firewall mark.
type ruleSpec struct {
	Family   int    `json:"family"` // afInet or afInet6
	Priority int    `json:"priority"`
	Table    int    `json:"table"`
	Mark     uint32 `json:"fwmark"`
	Mask     uint32 `json:"fwmask"`
	// Invert ("not") applies the rule to packets without the mark.
	Invert bool `json:"invert"`
}

// linkSpec is what the agent added to one network device. The device is
// named by index and name together: a device by that index with another
// name is not the one the agent changed.
type linkSpec struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// Up is true when the agent brought the device up (it was down).
	Up bool `json:"up,omitempty"`
	// Metric, when not 0, is the interface metric the agent set (Windows);
	// taking it back turns the automatic metric on again.
	Metric int            `json:"metric,omitempty"`
	Addrs  []netip.Prefix `json:"addrs,omitempty"`
	Routes []routeSpec    `json:"routes,omitempty"`
}

// routeSpec is a route through the device of its linkSpec.
type routeSpec struct {
	Dst   netip.Prefix `json:"dst"`
	Table int          `json:"table"`
	Proto int          `json:"proto"`
}

// bypassRules are the agent's rules: every packet without the bypass mark
// looks up the agent's table.
func bypassRules() []ruleSpec {
	var rules []ruleSpec
	for _, family := range []int{afInet, afInet6} {
		rules = append(rules, ruleSpec{Family: family, Priority: rulePriority, Table: routeTable,
			Mark: BypassMark, Mask: 0xffffffff, Invert: true})
	}
	return rules
}

// compileRouter is the state cfg asks for on the device with index idx.
// broughtUp says the agent brings (or brought) the device up.
func compileRouter(cfg RouterConfig, idx int, broughtUp bool) routerState {
	l := linkSpec{Name: cfg.Interface, Index: idx, Up: broughtUp}
	for _, a := range cfg.Addrs {
		if !slices.Contains(l.Addrs, a) {
			l.Addrs = append(l.Addrs, a)
		}
	}
	routes := make([]routeSpec, len(cfg.Routes))
	for i, p := range cfg.Routes {
		routes[i] = routeSpec{Dst: p.Masked(), Table: routeTable, Proto: routeProto}
	}
	l.Routes = appendMissing(make([]routeSpec, 0, len(routes)), routes)
	return routerState{Version: 1, Rules: bypassRules(), Links: []linkSpec{l}}
}

// compileMain is the state cfg asks for on the device dev where the agent's
// routes go in the main table (Windows, macOS: the agent's own connections
// are bound to the physical interface instead of marked, so no rule is
// needed). metric, when not 0, is the interface metric to set.
func compileMain(cfg RouterConfig, dev linkSpec, broughtUp bool, metric int) routerState {
	l := linkSpec{Name: dev.Name, Index: dev.Index, Up: broughtUp, Metric: metric}
	l.Addrs = appendMissing(nil, cfg.Addrs)
	routes := make([]routeSpec, len(cfg.Routes))
	for i, p := range cfg.Routes {
		routes[i] = routeSpec{Dst: p.Masked()}
	}
	l.Routes = appendMissing(make([]routeSpec, 0, len(routes)), routes)
	return routerState{Version: 1, Links: []linkSpec{l}}
}

// link returns the entry for the same device as l (index and name), or an
// empty one.
func (s routerState) link(l linkSpec) linkSpec {
	for _, x := range s.Links {
		if x.Index == l.Index && x.Name == l.Name {
			return x
		}
	}
	return linkSpec{Name: l.Name, Index: l.Index}
}

// empty reports whether s holds no change at all.
func (s routerState) empty() bool {
	if len(s.Rules) > 0 {
		return false
	}
	for _, l := range s.Links {
		if l.Up || l.Metric != 0 || len(l.Addrs) > 0 || len(l.Routes) > 0 {
			return false
		}
	}
	return true
}

// keepLinks returns s with only the links for which keep is true (the
// others are gone, and what the agent added to them went with them).
func (s routerState) keepLinks(keep func(linkSpec) bool) routerState {
	out := s
	out.Links = nil
	for _, l := range s.Links {
		if keep(l) {
			out.Links = append(out.Links, l)
		}
	}
	return out
}

// unionRouter is everything in a or b: what the journal must hold while the
// OS moves from one to the other.
func unionRouter(a, b routerState) routerState {
	out := routerState{Version: max(a.Version, b.Version), Rules: slices.Clone(a.Rules)}
	out.Rules = appendMissing(out.Rules, b.Rules)
	for _, l := range a.Links {
		out.Links = append(out.Links, mergeLink(l, b.link(l)))
	}
	for _, l := range b.Links {
		if !a.hasLink(l) {
			out.Links = append(out.Links, l)
		}
	}
	return out
}

func (s routerState) hasLink(l linkSpec) bool {
	return slices.ContainsFunc(s.Links, func(x linkSpec) bool { return x.Index == l.Index && x.Name == l.Name })
}

func mergeLink(a, b linkSpec) linkSpec {
	return linkSpec{Name: a.Name, Index: a.Index, Up: a.Up || b.Up, Metric: cmp.Or(b.Metric, a.Metric),
		Addrs:  appendMissing(slices.Clone(a.Addrs), b.Addrs),
		Routes: appendMissing(slices.Clone(a.Routes), b.Routes)}
}

// appendMissing appends the elements of add that s (and add before them)
// do not hold.
func appendMissing[T comparable](s, add []T) []T {
	if len(s)+len(add) <= lookupScan {
		for _, x := range add {
			if !slices.Contains(s, x) {
				s = append(s, x)
			}
		}
		return s
	}
	in := setOf(s)
	for _, x := range add {
		if _, ok := in[x]; !ok {
			s = append(s, x)
			in[x] = struct{}{}
		}
	}
	return s
}

// missing returns the elements of s that are not in from.
func missing[T comparable](s, from []T) []T {
	var out []T
	if len(from) <= lookupScan {
		for _, x := range s {
			if !slices.Contains(from, x) {
				out = append(out, x)
			}
		}
		return out
	}
	in := setOf(from)
	for _, x := range s {
		if _, ok := in[x]; !ok {
			out = append(out, x)
		}
	}
	return out
}

// lookupScan is the longest list appendMissing and missing scan for each
// element; past it, they build a set. With 10,000 apps the agent's table
// holds tens of thousands of routes, and a scan for each took seconds of
// CPU on every change.
const lookupScan = 16

// setOf returns the elements of s as a set.
func setOf[T comparable](s []T) map[T]struct{} {
	set := make(map[T]struct{}, len(s))
	for _, x := range s {
		set[x] = struct{}{}
	}
	return set
}

// osRouting is what the OS has of the kinds of things the agent adds: the
// rules exactly like one of the agent's, the addresses of the agent's
// devices, and every route in the agent's tables.
type osRouting struct {
	Rules  []ruleSpec
	Addrs  []linkAddr
	Routes []linkRoute
}

type linkAddr struct {
	Index int
	Addr  netip.Prefix
}

type linkRoute struct {
	Index int
	Route routeSpec
}

// routeKey is what makes two routes the same destination for the OS: a
// second route to it in the same table is refused, whatever its device.
type routeKey struct {
	dst   netip.Prefix
	table int
}

// claimRouter drops from want what the OS already has and have (the
// journal) does not record as the agent's: someone else's rule, address, or
// route in the agent's table, which the agent must neither add (it is there,
// or in the way) nor ever remove. It returns want without them, and each
// one described for the log.
func claimRouter(have, want routerState, sys osRouting) (routerState, []string) {
	var foreign []string
	out := want
	out.Rules = nil
	for _, r := range want.Rules {
		if !slices.Contains(have.Rules, r) && slices.Contains(sys.Rules, r) {
			foreign = append(foreign, "rule "+r.String())
			continue
		}
		out.Rules = append(out.Rules, r)
	}
	out.Links = nil
	for _, w := range want.Links {
		h := have.link(w)
		had := setOf(h.Routes)
		taken := map[routeKey]linkRoute{}
		for _, x := range sys.Routes {
			k := routeKey{x.Route.Dst, x.Route.Table}
			if _, ok := taken[k]; !ok {
				taken[k] = x
			}
		}
		l := w
		l.Addrs, l.Routes = nil, make([]routeSpec, 0, len(w.Routes))
		for _, a := range w.Addrs {
			if !slices.Contains(h.Addrs, a) && slices.Contains(sys.Addrs, linkAddr{w.Index, a}) {
				foreign = append(foreign, fmt.Sprintf("address %s on %s", a, w.Name))
				continue
			}
			l.Addrs = append(l.Addrs, a)
		}
		for _, r := range w.Routes {
			if _, ok := had[r]; !ok {
				if x, ok := taken[routeKey{r.Dst, r.Table}]; ok {
					foreign = append(foreign, fmt.Sprintf("route %s in table %d (device #%d, proto %d)",
						r.Dst, r.Table, x.Index, x.Route.Proto))
					continue
				}
			}
			l.Routes = append(l.Routes, r)
		}
		out.Links = append(out.Links, l)
	}
	return out, foreign
}

// routerOp is one change to the OS routing.
type routerOp struct {
	Kind  opKind
	Link  linkSpec // the device (Name, Index) for address, link and route changes
	Addr  netip.Prefix
	Route routeSpec
	Rule  ruleSpec
	// Metric is the interface metric opMetricSet sets.
	Metric int
}

type opKind int

const (
	opAddrAdd opKind = iota
	opAddrDel
	opLinkUp
	opLinkDown
	opRuleAdd
	opRuleDel
	opRouteAdd
	opRouteDel
	opMetricSet
	opMetricAuto
)

// adds reports whether op adds to the OS (rather than removing).
func (op routerOp) adds() bool {
	return op.Kind == opAddrAdd || op.Kind == opLinkUp || op.Kind == opRuleAdd || op.Kind == opRouteAdd ||
		op.Kind == opMetricSet
}

// String is op as the ip(8) command that does the same.
func (op routerOp) String() string {
	verb := "add"
	if !op.adds() {
		verb = "del"
	}
	switch op.Kind {
	case opAddrAdd, opAddrDel:
		return fmt.Sprintf("ip address %s %s dev %s", verb, op.Addr, op.Link.Name)
	case opLinkUp:
		return "ip link set " + op.Link.Name + " up"
	case opLinkDown:
		return "ip link set " + op.Link.Name + " down"
	case opRuleAdd, opRuleDel:
		return fmt.Sprintf("ip%s rule %s %s", familyFlag(op.Rule.Family), verb, op.Rule)
	case opMetricSet:
		return fmt.Sprintf("set the interface metric of %s to %d", op.Link.Name, op.Metric)
	case opMetricAuto:
		return fmt.Sprintf("set the interface metric of %s to automatic", op.Link.Name)
	default:
		return fmt.Sprintf("ip%s route %s %s dev %s table %d proto %d", familyFlag(familyOf(op.Route.Dst)),
			verb, op.Route.Dst, op.Link.Name, op.Route.Table, op.Route.Proto)
	}
}

// String is r in ip-rule(8) syntax.
func (r ruleSpec) String() string {
	not := ""
	if r.Invert {
		not = "not "
	}
	return fmt.Sprintf("priority %d %sfwmark %#x/%#x lookup %d", r.Priority, not, r.Mark, r.Mask, r.Table)
}

func familyFlag(family int) string {
	if family == afInet6 {
		return " -6"
	}
	return ""
}

func familyOf(p netip.Prefix) int {
	if p.Addr().Is6() {
		return afInet6
	}
	return afInet
}

// planRouter is the ordered list of changes that takes the OS from have to
// want. Additions come first, in the order the kernel needs (addresses
// before routes get a source address; the device up before it takes
// routes), then removals in the reverse order (routes before the addresses
// and the device they use). A device in have but not in want loses
// everything the agent added to it.
func planRouter(have, want routerState) []routerOp {
	var ops []routerOp
	for _, w := range want.Links {
		h := have.link(w)
		for _, a := range missing(w.Addrs, h.Addrs) {
			ops = append(ops, routerOp{Kind: opAddrAdd, Link: w, Addr: a})
		}
		if w.Up && !h.Up {
			ops = append(ops, routerOp{Kind: opLinkUp, Link: w})
		}
		if w.Metric != 0 && w.Metric != h.Metric {
			ops = append(ops, routerOp{Kind: opMetricSet, Link: w, Metric: w.Metric})
		}
	}
	for _, r := range missing(want.Rules, have.Rules) {
		ops = append(ops, routerOp{Kind: opRuleAdd, Rule: r})
	}
	for _, w := range want.Links {
		for _, r := range missing(w.Routes, have.link(w).Routes) {
			ops = append(ops, routerOp{Kind: opRouteAdd, Link: w, Route: r})
		}
	}
	for _, h := range have.Links {
		w := want.link(h)
		for _, r := range missing(h.Routes, w.Routes) {
			ops = append(ops, routerOp{Kind: opRouteDel, Link: h, Route: r})
		}
		for _, a := range missing(h.Addrs, w.Addrs) {
			ops = append(ops, routerOp{Kind: opAddrDel, Link: h, Addr: a})
		}
		if h.Metric != 0 && w.Metric == 0 {
			ops = append(ops, routerOp{Kind: opMetricAuto, Link: h})
		}
		if h.Up && !w.Up {
			ops = append(ops, routerOp{Kind: opLinkDown, Link: h})
		}
	}
	for _, r := range missing(have.Rules, want.Rules) {
		ops = append(ops, routerOp{Kind: opRuleDel, Rule: r})
	}
	for i := range ops {
		ops[i].Link = linkSpec{Name: ops[i].Link.Name, Index: ops[i].Link.Index}
	}
	return ops
}

// prefixOf converts a prefix the OS reports; a nil one (a default route
// from netlink) is not one the agent adds.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if addr.Is4In6() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(addr.Unmap(), ones), true
}
