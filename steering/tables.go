package steering

import (
	"cmp"
	"math/bits"
	"net/netip"
	"slices"
)

// rule is one compiled host pattern (or exception entry). Rules with the same
// key are chained through next in configuration order, so the first app in the
// config wins a tie.
type rule struct {
	app  int32 // index into Snapshot.apps; -1 for exceptions
	next int32 // next rule with the same name (name chains only); -1 ends it
	host int32 // index of the host in its list (the app's hosts or list)
	list ruleList
	kind HostKind
}

// ruleList says which config list a rule's host comes from, for its text.
type ruleList uint8

const (
	listAppHosts ruleList = iota
	listExDomains
	listExAddrs
)

// maxName is the longest name the matcher looks at (253 plus a trailing dot).
const maxName = 254

// normName writes the lower-cased form of s without its trailing dot into buf.
// It reports false for names that are empty, too long to be DNS names, or
// start or end with an empty label; an empty label inside a name is caught by
// nameTable.lookup, which visits every dot anyway.
func normName(buf *[maxName]byte, s string) (int, bool) {
	if n := len(s); n > 0 && s[n-1] == '.' {
		s = s[:n-1]
	}
	if len(s) == 0 || len(s) > 253 || s[0] == '.' || s[len(s)-1] == '.' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return len(s), true
}

// nameTable maps exact names and wildcard domains to rule chains. The zero
// value is an empty table; add makes the maps it needs.
type nameTable struct {
	exact nameMap
	wild  nameMap // key: the domain below which names match
	// exactDepths and wildDepths have bit n set when some key has n labels
	// (bit 63: 63 or more), so lookups skip suffixes no key can equal.
	exactDepths, wildDepths uint64
}

func depthBit(labels int) uint64 { return 1 << min(labels, 63) }

func countLabels(name []byte) int {
	n := 1
	for _, c := range name {
		if c == '.' {
			n++
		}
	}
	return n
}

// add prepends rule r for s; callers add rules in reverse config order so that
// chains end up in config order.
func (t *nameTable) add(rules []rule, r int32, s Host) {
	m := &t.exact
	if s.Kind == HostWildcard {
		m = &t.wild
		t.wildDepths |= depthBit(countLabels([]byte(s.Name)))
	} else {
		t.exactDepths |= depthBit(countLabels([]byte(s.Name)))
	}
	if head, ok := m.set(s.Name, r); ok {
		rules[r].next = head
	}
}

// trim drops the tables' growth room, once every name is added.
func (t *nameTable) trim() {
	t.exact.trim()
	t.wild.trim()
}

// lookup visits the chains that match name from the most specific (exact, then
// wildcards from the longest domain down) and returns the first rule accepted by
// ok, or -1. ok is a plain func value the callers build without captures that
// escape, so the lookup does not allocate.
func (t *nameTable) lookup(name []byte, rules []rule, ok func(*rule) bool) int32 {
	labels := countLabels(name)
	if t.exactDepths&depthBit(labels) != 0 {
		if r := t.first(&t.exact, name, rules, ok); r >= 0 {
			return r
		}
	}
	if t.wildDepths == 0 {
		return -1
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if i == 0 || name[i-1] == '.' {
			// An empty label: no DNS name, so below no wildcard (no key has
			// one, so no exact name matched either).
			return -1
		}
		labels--
		if t.wildDepths&depthBit(labels) == 0 {
			continue
		}
		if r := t.first(&t.wild, name[i+1:], rules, ok); r >= 0 {
			return r
		}
	}
	return -1
}

func (t *nameTable) first(m *nameMap, key []byte, rules []rule, ok func(*rule) bool) int32 {
	r, found := m.get(key)
	if !found {
		return -1
	}
	for ; r >= 0; r = rules[r].next {
		if ok == nil || ok(&rules[r]) {
			return r
		}
	}
	return -1
}

// addrTable is a longest-prefix-match table for one address family. CIDR
// prefixes are either nested or disjoint, so the address space splits into
// segments, each owned by the innermost prefix covering it; a lookup is one
// binary search, and less specific prefixes are reached through parent links.
type addrTable struct {
	starts []u128  // first address of each segment, ascending; starts[0] is 0
	owner  []int32 // innermost node of each segment, -1 for none
	nodes  []addrNode
	links  []addrLink

	// The smallest prefix covering every node (coverLo/coverBits) is cut into
	// 2^ibits buckets; buckets[b] is the last segment starting at or before
	// bucket b, so a lookup binary-searches only the few segments of its
	// bucket instead of the whole table.
	coverLo   u128
	coverBits int
	ibits     uint
	buckets   []int32
}

// maxIndexBits sizes the bucket index (2^16+1 int32s per table).
const maxIndexBits = 16

type addrNode struct {
	key    pkey  // the prefix, in the 128-bit space (netip.Prefix is twice the size)
	parent int32 // enclosing node, -1 for none
	head   int32 // first link (rule) for this prefix, in config order
}

// prefix returns the node's prefix as the config's family has it.
func (n *addrNode) prefix() netip.Prefix {
	if is4 := n.key.bits >= 96 && n.key.addr.hi == 0 && n.key.addr.lo>>32 == 0xffff; is4 {
		return netip.PrefixFrom(n.key.addr.addr(true), int(n.key.bits)-96)
	}
	return netip.PrefixFrom(n.key.addr.addr(false), int(n.key.bits))
}

// addrLink chains the rules of one prefix. Address rules need their own chains
// (not rule.next): a range is several prefixes, each with its own chain.
type addrLink struct {
	rule, next int32
}

type prefixRule struct {
	p netip.Prefix
	r int32
}

// buildAddrTable builds the table from (prefix, rule) pairs given in config
// order; all prefixes are of one family.
func buildAddrTable(in []prefixRule) addrTable {
	t := addrTable{starts: make([]u128, 1, 2*len(in)+1), owner: make([]int32, 1, 2*len(in)+1)}
	t.owner[0] = -1
	t.addNodes(in)
	t.sweep()
	// The segments were appended to a guess at their number: keep only what
	// is used (the table lives as long as its snapshot).
	t.starts, t.owner = slices.Clone(t.starts), slices.Clone(t.owner)
	return t
}

// addNodes makes one node per distinct prefix, chaining its rules in config
// order (in is walked backwards and each rule is prepended).
func (t *addrTable) addNodes(in []prefixRule) {
	t.nodes = make([]addrNode, 0, len(in))
	t.links = make([]addrLink, 0, len(in))
	idx := make(map[pkey]int32, len(in))
	for i := len(in) - 1; i >= 0; i-- {
		pr := in[i]
		k := keyOf(pr.p)
		n, ok := idx[k]
		if !ok {
			n = int32(len(t.nodes))
			idx[k] = n
			t.nodes = append(t.nodes, addrNode{key: k, parent: -1, head: -1})
		}
		t.links = append(t.links, addrLink{rule: pr.r, next: t.nodes[n].head})
		t.nodes[n].head = int32(len(t.links) - 1)
	}
}

// sweep cuts the address space into segments owned by the innermost prefix,
// walking the prefixes in address order with a stack of the open ones, and
// sets each node's parent.
func (t *addrTable) sweep() {
	type bound struct {
		lo, hi u128
		bits   int
		n      int32
	}
	order := make([]bound, len(t.nodes))
	for i, nd := range t.nodes {
		lo, b := nd.key.addr, int(nd.key.bits)
		order[i] = bound{lo, lo.or(hostMask(b)), b, int32(i)}
	}
	slices.SortFunc(order, func(a, b bound) int {
		if a.lo != b.lo {
			if a.lo.less(b.lo) {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.bits, b.bits)
	})
	var stack []bound
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		owner := int32(-1)
		if len(stack) > 0 {
			owner = stack[len(stack)-1].n
		}
		if next, overflow := top.hi.addOne(); !overflow {
			t.emit(next, owner)
		}
	}
	for _, b := range order {
		for len(stack) > 0 && stack[len(stack)-1].hi.less(b.lo) {
			pop()
		}
		if len(stack) > 0 {
			t.nodes[b.n].parent = stack[len(stack)-1].n
		}
		t.emit(b.lo, b.n)
		stack = append(stack, b)
	}
	for len(stack) > 0 {
		pop()
	}
	if len(order) > 0 {
		lo, hi := order[0].lo, order[0].hi
		for _, b := range order[1:] {
			if hi.less(b.hi) {
				hi = b.hi
			}
		}
		t.index(lo, hi)
	}
}

// index builds the bucket index over the prefix covering [lo, hi].
func (t *addrTable) index(lo, hi u128) {
	x := u128{lo.hi ^ hi.hi, lo.lo ^ hi.lo}
	cp := x.leadingZeros()
	t.coverBits = cp
	t.coverLo = lo.andNot(hostMask(cp))
	// About one bucket per segment: more buckets than segments would make
	// few lookups shorter and cost 4 bytes each.
	t.ibits = uint(min(maxIndexBits, 128-cp, bits.Len(uint(len(t.starts)))))
	shift := uint(128-cp) - t.ibits
	nb := 1 << t.ibits
	t.buckets = make([]int32, nb+1)
	seg := 0
	for b := 0; b < nb; b++ {
		start := t.coverLo.or(u128{0, uint64(b)}.shl(shift))
		for seg+1 < len(t.starts) && !start.less(t.starts[seg+1]) {
			seg++
		}
		t.buckets[b] = int32(seg)
	}
	t.buckets[nb] = int32(len(t.starts) - 1)
}

// emit starts a segment owned by owner at start.
func (t *addrTable) emit(start u128, owner int32) {
	n := len(t.starts)
	if t.starts[n-1] == start {
		t.owner[n-1] = owner
		if n >= 2 && t.owner[n-2] == owner {
			t.starts, t.owner = t.starts[:n-1], t.owner[:n-1]
		}
		return
	}
	if t.owner[n-1] == owner {
		return
	}
	t.starts = append(t.starts, start)
	t.owner = append(t.owner, owner)
}

// lookup returns the innermost node containing a, or -1.
func (t *addrTable) lookup(a u128) int32 {
	if t.buckets == nil || a.andNot(hostMask(t.coverBits)) != t.coverLo {
		return -1 // no prefix lies outside the cover
	}
	b := a.shr(uint(128-t.coverBits)-t.ibits).lo & (1<<t.ibits - 1)
	lo, hi := int(t.buckets[b])+1, int(t.buckets[b+1])+1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if a.less(t.starts[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return t.owner[lo-1]
}
