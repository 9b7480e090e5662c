package steering

import (
	"hash/maphash"
	"math/bits"
)

// nameMap maps names to rule chain heads, like a map[string]int32 in about a
// tenth of its memory: it keeps no key and no value beside its slots. A slot
// holds its chain head (rule+1) in its low bits, enough for every rule of the
// table (hostList), and bits of the name's hash above them. The name is the
// host the head was written as (a rule's host, hostList), compared as the
// name it stands for (hostIs), and only when the hash bits agree: nearly only
// for the name looked for. At 10,000 apps the name tables hold 30,000 names;
// Go's map took ~43 bytes an entry, keys and heads ~28, this ~6.5.
type nameMap struct {
	slots []uint32 // hash bits | rule+1 for a used slot, 0 for a free one; a power of two long, at most half full while it grows
	n     int      // used slots
	rbits uint     // the low bits of a slot that hold rule+1
	seed  maphash.Seed
}

// hostList gives the host each rule of a table was written as: rule r's is
// hosts[r-base] in text (rules are numbered across tables, see
// Snapshot.rules). The hosts are places in one string rather than strings:
// at 50,000 hosts half the memory, and nothing for the GC to scan.
type hostList struct {
	text  string
	hosts []strRef
	base  int32
}

// newHostList returns the hosts of list, rule base first, in a packed copy.
func newHostList(list []string, base int32) hostList {
	p := newPacker(len(list))
	for _, h := range list {
		p.add(h)
	}
	p.pack()
	h := hostList{text: p.text, hosts: make([]strRef, len(list)), base: base}
	for i, s := range list {
		h.hosts[i] = p.ref(s)
	}
	return h
}

func (h *hostList) of(r int32) string { return h.hosts[r-h.base].in(h.text) }

// get returns the chain head of name (normalised: lower case, no trailing dot).
func (m *nameMap) get(name []byte, host *hostList) (int32, bool) {
	if len(m.slots) == 0 {
		return 0, false
	}
	i, found := m.find(name, maphash.Bytes(m.seed, name), host)
	if !found {
		return 0, false
	}
	return m.rule(m.slots[i]), true
}

// set makes r the chain head of name (normalised) and returns the one it
// replaces, if any. host must know r.
func (m *nameMap) set(name []byte, r int32, host *hostList) (int32, bool) {
	if len(m.slots) == 0 {
		m.seed = maphash.MakeSeed()
		m.slots = make([]uint32, 16)
		m.rbits = uint(bits.Len(uint(host.base) + uint(len(host.hosts))))
	}
	h := maphash.Bytes(m.seed, name)
	i, found := m.find(name, h, host)
	var prev int32
	if found {
		prev = m.rule(m.slots[i])
	} else {
		m.n++
	}
	m.slots[i] = m.tag(h) | uint32(r+1)
	if 2*m.n > len(m.slots) {
		m.rehash(2*len(m.slots), host)
	}
	return prev, found
}

func (m *nameMap) tagMask() uint32     { return ^uint32(0) << m.rbits }
func (m *nameMap) tag(h uint64) uint32 { return uint32(h>>32) & m.tagMask() }
func (m *nameMap) rule(sl uint32) int32 {
	return int32(sl&^m.tagMask()) - 1
}

// find returns the slot of name (hashed h) and true, or the free slot where it
// would go and false.
func (m *nameMap) find(name []byte, h uint64, host *hostList) (uint64, bool) {
	mask, tag := uint64(len(m.slots)-1), m.tag(h)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := m.slots[i]
		if sl == 0 {
			return i, false
		}
		if sl&m.tagMask() == tag && hostIs(host.of(m.rule(sl)), name) {
			return i, true
		}
	}
}

func (m *nameMap) rehash(n int, host *hostList) {
	old := m.slots
	m.slots = make([]uint32, n)
	mask := uint64(n - 1)
	var buf [maxName]byte
	for _, sl := range old {
		if sl == 0 {
			continue
		}
		i := maphash.Bytes(m.seed, hostName(&buf, host.of(m.rule(sl)))) & mask
		for m.slots[i] != 0 {
			i = (i + 1) & mask
		}
		m.slots[i] = sl // the hash bits do not depend on the size
	}
}

// trim drops the growth room once the table is built: slots beyond a load
// of three quarters (a table grows at one half). Probes rarely look past a
// slot's hash bits, so a fuller table costs lookups little.
func (m *nameMap) trim(host *hostList) {
	n := 16
	for 4*m.n > 3*n {
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
