package steering

import "hash/maphash"

// nameMap maps names to rule chain heads, like a map[string]int32 in about
// two thirds of its memory: the keys and heads are two arrays indexed by
// entry, and an open-addressing index of entry numbers (4 bytes a slot, at
// most half full) finds them. At 10,000 apps the name tables hold 30,000
// names; Go's map took ~43 bytes an entry, this ~28. Keys are not copied: the
// snapshot's names point into its config's strings (copyApps, within).
type nameMap struct {
	keys  []string
	heads []int32
	slots []int32 // entry+1 for a used slot, 0 for a free one; a power of two long
	seed  maphash.Seed
}

// get returns the chain head of key.
func (m *nameMap) get(key []byte) (int32, bool) {
	if len(m.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(m.slots) - 1)
	for i := maphash.Bytes(m.seed, key) & mask; ; i = (i + 1) & mask {
		e := m.slots[i]
		if e == 0 {
			return 0, false
		}
		if m.keys[e-1] == string(key) {
			return m.heads[e-1], true
		}
	}
}

// set makes r the chain head of key and returns the one it replaces, if any.
func (m *nameMap) set(key string, r int32) (int32, bool) {
	if len(m.slots) == 0 {
		m.seed = maphash.MakeSeed()
		m.slots = make([]int32, 16)
	}
	i, e := m.find(key)
	if e > 0 {
		prev := m.heads[e-1]
		m.heads[e-1] = r
		return prev, true
	}
	m.keys = append(m.keys, key)
	m.heads = append(m.heads, r)
	m.slots[i] = int32(len(m.keys))
	if 2*len(m.keys) > len(m.slots) {
		m.rehash(2 * len(m.slots))
	}
	return 0, false
}

// find returns the slot of key and its entry+1, or the free slot where it
// would go and 0.
func (m *nameMap) find(key string) (uint64, int32) {
	mask := uint64(len(m.slots) - 1)
	for i := maphash.String(m.seed, key) & mask; ; i = (i + 1) & mask {
		e := m.slots[i]
		if e == 0 || m.keys[e-1] == key {
			return i, e
		}
	}
}

func (m *nameMap) rehash(n int) {
	m.slots = make([]int32, n)
	for e, k := range m.keys {
		i, _ := m.find(k)
		m.slots[i] = int32(e + 1)
	}
}

// trim drops the growth room of the key and head arrays, once the table is
// built.
func (m *nameMap) trim() {
	if cap(m.keys) > len(m.keys) {
		m.keys = append([]string(nil), m.keys...)
		m.heads = append([]int32(nil), m.heads...)
	}
}
