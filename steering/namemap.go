package steering

import (
	"hash/maphash"
	"math/bits"
)

// nameMap maps names to rule chain heads, like a map[string]int32 in about a
// quarter of its memory: it keeps no key. An entry's name is the host its chain
// head was written as (a rule's host, hostOf), compared as the name it stands
// for (hostIs), so the map holds only the heads, indexed by entry, and an
// open-addressing index of entry numbers (4 bytes a slot, at most three
// quarters full)
// that finds them. A slot holds the entry number in its low bits and, above
// it, bits of the name's hash, so that a probe compares a host only when they
// agree: nearly only the one it is looking for. At 10,000 apps the name
// tables hold 30,000 names; Go's map took ~43 bytes an entry, keys and heads
// ~28, this ~10.
type nameMap struct {
	heads []int32
	slots []uint32 // hash bits | entry+1 for a used slot, 0 for a free one; a power of two long
	seed  maphash.Seed
}

// hostList gives the host each rule of a table was written as: rule r's is
// list[r-base] (rules are numbered across tables, see Snapshot.rules).
type hostList struct {
	list []string
	base int32
}

func (h *hostList) of(r int32) string { return h.list[r-h.base] }

// get returns the chain head of name (normalised: lower case, no trailing dot).
func (m *nameMap) get(name []byte, host *hostList) (int32, bool) {
	if len(m.slots) == 0 {
		return 0, false
	}
	_, e := m.find(name, maphash.Bytes(m.seed, name), host)
	if e == 0 {
		return 0, false
	}
	return m.heads[e-1], true
}

// set makes r the chain head of name (normalised) and returns the one it
// replaces, if any. host must know r.
func (m *nameMap) set(name []byte, r int32, host *hostList) (int32, bool) {
	if len(m.slots) == 0 {
		m.seed = maphash.MakeSeed()
		m.slots = make([]uint32, 16)
	}
	h := maphash.Bytes(m.seed, name)
	i, e := m.find(name, h, host)
	if e > 0 {
		prev := m.heads[e-1]
		m.heads[e-1] = r
		return prev, true
	}
	m.heads = append(m.heads, r)
	m.slots[i] = m.tag(h) | uint32(len(m.heads))
	if 2*len(m.heads) > len(m.slots) {
		m.rehash(2*len(m.slots), host)
	}
	return 0, false
}

// tagMask returns the slot bits that hold hash bits: those above the largest
// entry number, which is below len(slots).
func (m *nameMap) tagMask() uint32 {
	return ^uint32(0) << uint(bits.TrailingZeros(uint(len(m.slots))))
}

func (m *nameMap) tag(h uint64) uint32 { return uint32(h>>32) & m.tagMask() }

// find returns the slot of name (hashed h) and its entry+1, or the free slot
// where it would go and 0.
func (m *nameMap) find(name []byte, h uint64, host *hostList) (uint64, uint32) {
	mask, tm := uint64(len(m.slots)-1), m.tagMask()
	tag := uint32(h>>32) & tm
	for i := h & mask; ; i = (i + 1) & mask {
		sl := m.slots[i]
		if sl == 0 {
			return i, 0
		}
		if sl&tm == tag && hostIs(host.of(m.heads[sl&^tm-1]), name) {
			return i, sl &^ tm
		}
	}
}

func (m *nameMap) rehash(n int, host *hostList) {
	m.slots = make([]uint32, n)
	mask := uint64(n - 1)
	var buf [maxName]byte
	for e, r := range m.heads {
		h := maphash.Bytes(m.seed, hostName(&buf, host.of(r)))
		i := h & mask
		for m.slots[i] != 0 {
			i = (i + 1) & mask
		}
		m.slots[i] = m.tag(h) | uint32(e+1)
	}
}

// trim drops the growth room, once the table is built: that of the heads,
// and slots beyond a load of three quarters (a table grows at one half).
// Probes rarely look past a slot's hash bits, so a fuller table costs lookups
// little.
func (m *nameMap) trim(host *hostList) {
	if cap(m.heads) > len(m.heads) {
		m.heads = append([]int32(nil), m.heads...)
	}
	n := 16
	for 4*len(m.heads) > 3*n {
		n *= 2
	}
	if n < len(m.slots) {
		m.rehash(n, host)
	}
}

// hostName returns the name a valid name or wildcard host stands for (see
// parseName), normalised into buf.
func hostName(buf *[maxName]byte, host string) []byte {
	n, _ := normName(buf, trimWild(host))
	return buf[:n]
}

// hostIs reports whether the valid name or wildcard host stands for name
// (normalised), without normalising host: names are ASCII (checkLabel).
func hostIs(host string, name []byte) bool {
	host = trimWild(host)
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if len(host) != len(name) {
		return false
	}
	if host == string(name) {
		return true // hosts are mostly written in lower case
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

func trimWild(host string) string {
	if len(host) >= 2 && host[0] == '*' && host[1] == '.' {
		return host[2:]
	}
	return host
}
