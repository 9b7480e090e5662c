package steering

import (
	"cmp"
	"slices"
)

// rule is one compiled host pattern (or exception entry). Which config element
// it comes from follows from its index (see Snapshot.ruleText), whether a name
// rule is a wildcard from the table it is found in, and the rules of the same
// name or prefix from the tables (nameTable.after, addrTable.nodeRules).
type rule struct {
	app int32 // index into Snapshot.apps; -1 for exceptions
}

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
// value with host set is an empty table; add makes the maps it needs.
type nameTable struct {
	host  hostList // the host each rule was written as: the maps' keys
	exact nameMap
	wild  nameMap // key: the domain below which names match
	// The maps hold the first rule of each name; ties, the rules after it
	// in config order, are chained in next, sorted by rule once the table is
	// built (trim). Ties are rare: a config has few or none.
	next []ruleLink
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

// ruleLink says that rule next comes after rule r in its name's chain.
type ruleLink struct{ r, next int32 }

// add prepends rule r for s; callers add rules in reverse config order so that
// chains end up in config order.
func (t *nameTable) add(r int32, s Host) {
	m := &t.exact
	if s.Kind == HostWildcard {
		m = &t.wild
		t.wildDepths |= depthBit(countLabels([]byte(s.Name)))
	} else {
		t.exactDepths |= depthBit(countLabels([]byte(s.Name)))
	}
	if head, ok := m.set([]byte(s.Name), r, &t.host); ok {
		t.next = append(t.next, ruleLink{r, head})
	}
}

// trim drops the tables' growth room and sorts the ties, once every name is
// added: it must be called before lookups.
func (t *nameTable) trim() {
	t.exact.trim(&t.host)
	t.wild.trim(&t.host)
	t.next = slices.Clip(t.next)
	slices.SortFunc(t.next, func(a, b ruleLink) int { return cmp.Compare(a.r, b.r) })
}

// after returns the rule after r in its name's chain, or -1.
func (t *nameTable) after(r int32) int32 {
	if len(t.next) == 0 {
		return -1
	}
	i, ok := slices.BinarySearchFunc(t.next, r, func(l ruleLink, r int32) int { return cmp.Compare(l.r, r) })
	if !ok {
		return -1
	}
	return t.next[i].next
}

// lookup visits the chains that match name from the most specific (exact, then
// wildcards from the longest domain down) and returns the first rule accepted by
// ok, or -1, and whether it is a wildcard. ok is a plain func value the callers build without captures that
// escape, so the lookup does not allocate.
func (t *nameTable) lookup(name []byte, rules []rule, ok func(*rule) bool) (int32, bool) {
	labels := countLabels(name)
	if t.exactDepths&depthBit(labels) != 0 {
		if r := t.first(&t.exact, name, rules, ok); r >= 0 {
			return r, false
		}
	}
	if t.wildDepths == 0 {
		return -1, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if i == 0 || name[i-1] == '.' {
			// An empty label: no DNS name, so below no wildcard (no key has
			// one, so no exact name matched either).
			return -1, false
		}
		labels--
		if t.wildDepths&depthBit(labels) == 0 {
			continue
		}
		if r := t.first(&t.wild, name[i+1:], rules, ok); r >= 0 {
			return r, true
		}
	}
	return -1, false
}

func (t *nameTable) first(m *nameMap, key []byte, rules []rule, ok func(*rule) bool) int32 {
	r, found := m.get(key, &t.host)
	if !found {
		return -1
	}
	for ; r >= 0; r = t.after(r) {
		if ok == nil || ok(&rules[r]) {
			return r
		}
	}
	return -1
}
