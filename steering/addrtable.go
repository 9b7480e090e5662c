package steering

import (
	"cmp"
	"math/bits"
	"net/netip"
	"slices"
)

// addrTable is a longest-prefix-match table for one address family. CIDR
// prefixes are either nested or disjoint, so the address space splits into
// segments, each owned by the innermost prefix covering it; a lookup is one
// binary search, and less specific prefixes are reached through parent links.
//
// The table is built in the 128-bit space (u128, IPv4 mapped) and kept in its
// family's size: IPv4 segment starts are 32-bit offsets into ::ffff:0:0/96, a
// quarter of the memory, and IPv4 is nearly all of a large config's prefixes.
// A node (a distinct prefix) keeps only its parent and its rule: its bounds
// matter only while the table is built, and the routes are the segments that
// some node owns (covered).
type addrTable struct {
	v4      bool
	starts4 []uint32 // IPv4: first address of each segment, ascending, as an offset into ::ffff:0:0/96
	starts6 []u128   // IPv6: first address of each segment, ascending; starts6[0] is 0
	owner   []int32  // innermost node of each segment, -1 for none
	parent  []int32  // by node: the enclosing node, -1 for none
	// rule is by node: its rule, or when it has several (a tie, rare),
	// -1-i where more[i] is their number and the rules follow, in config
	// order.
	rule []int32
	more []int32

	// The smallest prefix covering every node (coverLo/coverBits) is cut into
	// 2^ibits buckets; buckets[b] is the last segment starting at or before
	// bucket b, so a lookup binary-searches only the few segments of its
	// bucket instead of the whole table.
	coverLo   u128
	coverBits int
	ibits     uint
	buckets   []int32
}

// maxIndexBits sizes the bucket index (at most 2^16+1 int32s per table).
const maxIndexBits = 16

// v4Base is the first IPv4 address in the 128-bit space (::ffff:0.0.0.0).
var v4Base = u128{0, 0xffff << 32}

type prefixRule struct {
	p netip.Prefix
	r int32
}

// buildAddrTable builds the table from (prefix, rule) pairs given in config
// order; all prefixes are of one family, IPv4 when v4.
func buildAddrTable(in []prefixRule, v4 bool) addrTable {
	t := addrTable{v4: v4}
	keys := t.addNodes(in)
	sg := t.sweep(keys)
	if v4 {
		t.starts4, t.owner = clip4(sg)
	} else {
		t.starts6, t.owner = slices.Clone(sg.starts), slices.Clone(sg.owner)
	}
	if len(keys) > 0 {
		lo, hi := keys[0].addr, keys[0].addr.or(hostMask(int(keys[0].bits)))
		for _, k := range keys[1:] {
			if k.addr.less(lo) {
				lo = k.addr
			}
			if e := k.addr.or(hostMask(int(k.bits))); hi.less(e) {
				hi = e
			}
		}
		t.index(lo, hi)
	}
	return t
}

// addNodes makes one node per distinct prefix, with its rules in config
// order, and returns the nodes' prefixes.
func (t *addrTable) addNodes(in []prefixRule) []pkey {
	idx := make(map[pkey]int32, len(in))
	keys := make([]pkey, 0, len(in))
	node := make([]int32, len(in))
	for i, pr := range in {
		k := keyOf(pr.p)
		n, ok := idx[k]
		if !ok {
			n = int32(len(keys))
			idx[k] = n
			keys = append(keys, k)
		}
		node[i] = n
	}
	count := make([]int32, len(keys))
	for _, n := range node {
		count[n]++
	}
	t.rule = make([]int32, len(keys))
	for i, n := range node {
		switch c := count[n]; {
		case c == 1:
			t.rule[n] = in[i].r
		case c > 1: // the first of a tie: room for all its rules
			off := len(t.more)
			t.rule[n] = int32(-1 - off)
			t.more = append(t.more, c)
			t.more = append(t.more, make([]int32, c)...)
			t.more[off+1] = in[i].r
			count[n] = -1 // from now on: minus the rules written
		default:
			t.more[-t.rule[n]-c] = in[i].r // -1-rule[n] is the offset
			count[n]--
		}
	}
	t.more = slices.Clip(t.more)
	t.parent = make([]int32, len(keys))
	return keys
}

// segments are the table's segments in the 128-bit space, while it is built.
type segments struct {
	starts []u128 // starts[0] is 0
	owner  []int32
}

// sweep cuts the address space into segments owned by the innermost prefix,
// walking the prefixes in address order with a stack of the open ones, and
// sets each node's parent.
func (t *addrTable) sweep(keys []pkey) segments {
	type bound struct {
		lo, hi u128
		bits   int
		n      int32
	}
	order := make([]bound, len(keys))
	for i, k := range keys {
		lo, b := k.addr, int(k.bits)
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
	sg := segments{starts: make([]u128, 1, 2*len(keys)+1), owner: make([]int32, 1, 2*len(keys)+1)}
	sg.owner[0] = -1
	var stack []bound
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		owner := int32(-1)
		if len(stack) > 0 {
			owner = stack[len(stack)-1].n
		}
		if next, overflow := top.hi.addOne(); !overflow {
			sg.emit(next, owner)
		}
	}
	for _, b := range order {
		for len(stack) > 0 && stack[len(stack)-1].hi.less(b.lo) {
			pop()
		}
		t.parent[b.n] = -1
		if len(stack) > 0 {
			t.parent[b.n] = stack[len(stack)-1].n
		}
		sg.emit(b.lo, b.n)
		stack = append(stack, b)
	}
	for len(stack) > 0 {
		pop()
	}
	return sg
}

// emit starts a segment owned by owner at start.
func (sg *segments) emit(start u128, owner int32) {
	n := len(sg.starts)
	if sg.starts[n-1] == start {
		sg.owner[n-1] = owner
		if n >= 2 && sg.owner[n-2] == owner {
			sg.starts, sg.owner = sg.starts[:n-1], sg.owner[:n-1]
		}
		return
	}
	if sg.owner[n-1] == owner {
		return
	}
	sg.starts = append(sg.starts, start)
	sg.owner = append(sg.owner, owner)
}

// clip4 returns the segments of an IPv4 table inside ::ffff:0:0/96, as
// offsets into it. The first is the one holding 0.0.0.0, which starts at 0
// (::): an IPv4 table has no segment below ::ffff:0:0 but that one.
func clip4(sg segments) ([]uint32, []int32) {
	i, _ := slices.BinarySearchFunc(sg.starts, v4Base, func(s, t u128) int {
		if s == t {
			return 0
		} else if s.less(t) {
			return -1
		}
		return 1
	})
	if i == len(sg.starts) || sg.starts[i] != v4Base {
		i-- // the segment before holds 0.0.0.0
	}
	end := i + 1
	for end < len(sg.starts) && sg.starts[end].andNot(hostMask(96)) == v4Base {
		end++
	}
	starts := make([]uint32, end-i)
	for j := range starts {
		starts[j] = uint32(sg.starts[i+j].lo)
	}
	return starts, slices.Clone(sg.owner[i:end])
}

// segs returns the number of segments.
func (t *addrTable) segs() int { return len(t.owner) }

// start returns the first address of segment i in the 128-bit space.
func (t *addrTable) start(i int) u128 {
	if t.v4 {
		return v4Base.or(u128{0, uint64(t.starts4[i])})
	}
	return t.starts6[i]
}

// last returns the last address of segment i in the 128-bit space.
func (t *addrTable) last(i int) u128 {
	if i+1 < t.segs() {
		return t.start(i + 1).subOne()
	}
	if t.v4 {
		return v4Base.or(hostMask(96))
	}
	return hostMask(0)
}

// index builds the bucket index over the prefix covering [lo, hi].
func (t *addrTable) index(lo, hi u128) {
	x := u128{lo.hi ^ hi.hi, lo.lo ^ hi.lo}
	cp := x.leadingZeros()
	t.coverBits = cp
	t.coverLo = lo.andNot(hostMask(cp))
	// A bucket per two to four segments: the binary search then takes a
	// step or two more than with one per segment, in a cache line or two,
	// and the index costs a quarter of the memory.
	t.ibits = uint(min(maxIndexBits, 128-cp, max(0, bits.Len(uint(t.segs()))-2)))
	shift := uint(128-cp) - t.ibits
	nb := 1 << t.ibits
	t.buckets = make([]int32, nb+1)
	seg := 0
	for b := 0; b < nb; b++ {
		start := t.coverLo.or(u128{0, uint64(b)}.shl(shift))
		for seg+1 < t.segs() && !start.less(t.start(seg+1)) {
			seg++
		}
		t.buckets[b] = int32(seg)
	}
	t.buckets[nb] = int32(t.segs() - 1)
}

// lookup returns the innermost node containing a, or -1.
func (t *addrTable) lookup(a u128) int32 {
	if t.buckets == nil || a.andNot(hostMask(t.coverBits)) != t.coverLo {
		return -1 // no prefix lies outside the cover
	}
	b := a.shr(uint(128-t.coverBits)-t.ibits).lo & (1<<t.ibits - 1)
	lo, hi := int(t.buckets[b])+1, int(t.buckets[b+1])+1
	if t.v4 {
		k := uint32(a.lo)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if k < t.starts4[m] {
				hi = m
			} else {
				lo = m + 1
			}
		}
	} else {
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if a.less(t.starts6[m]) {
				hi = m
			} else {
				lo = m + 1
			}
		}
	}
	return t.owner[lo-1]
}

// nodeRules returns node n's rules, in config order.
func (t *addrTable) nodeRules(n int32) []int32 {
	if r := t.rule[n]; r < 0 {
		i := -1 - r
		return t.more[i+1 : i+1+t.more[i]]
	}
	return t.rule[n : n+1]
}

// empty reports whether the table holds no prefix.
func (t *addrTable) empty() bool { return len(t.parent) == 0 }

// covered returns the addresses some prefix of the table holds, as sorted,
// merged intervals.
func (t *addrTable) covered() []interval {
	var out []interval
	for i, o := range t.owner {
		if o < 0 {
			continue
		}
		lo, hi := t.start(i), t.last(i)
		if n := len(out); n > 0 {
			if next, _ := out[n-1].hi.addOne(); next == lo {
				out[n-1].hi = hi
				continue
			}
		}
		out = append(out, interval{lo, hi})
	}
	return out
}
