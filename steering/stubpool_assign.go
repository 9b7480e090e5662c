package steering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Assign returns the stub address of fqdn, assigning one if the name has none.
// An existing assignment never changes. A new one takes the next free address;
// only when none is free is the assignment that has been quiet longest recycled,
// and only if its last answer is older than TTL and its last flow (or answer)
// older than IdleTime. Names are compared case-insensitively, without the
// trailing dot.
func (p *StubPool) Assign(fqdn string, now time.Time) (netip.Addr, error) {
	var buf [maxName]byte
	n, ok := normName(&buf, fqdn)
	if !ok {
		return netip.Addr{}, fmt.Errorf("stub pool: invalid name %q", fqdn)
	}
	p.mu.Lock()
	if e := p.byName[string(buf[:n])]; e != nil {
		storeMax(&e.answered, now.UnixNano())
		p.mu.Unlock()
		return p.addrOf(e.off), nil
	}
	name, err := parseName(string(buf[:n]))
	if err != nil {
		p.mu.Unlock()
		return netip.Addr{}, fmt.Errorf("stub pool: invalid name %q: %w", fqdn, err)
	}
	off, ok := p.freeLocked()
	if !ok {
		off, ok = p.recycleLocked(now)
	}
	if !ok {
		p.mu.Unlock()
		return netip.Addr{}, ErrPoolExhausted
	}
	e := &stubEntry{fqdn: name, off: off}
	e.answered.Store(now.UnixNano())
	p.insertLocked(e)
	p.next = off + 1
	p.mu.Unlock()
	if p.cfg.OnChange != nil {
		p.cfg.OnChange()
	}
	return p.addrOf(off), nil
}

func (p *StubPool) insertLocked(e *stubEntry) {
	p.byName[e.fqdn] = e
	ci := e.off >> chunkBits
	c := p.index[ci].Load()
	if c == nil {
		c = new(stubChunk)
		p.index[ci].Store(c)
	}
	c[e.off&(1<<chunkBits-1)].Store(e)
}

func (p *StubPool) removeLocked(e *stubEntry) {
	delete(p.byName, e.fqdn)
	if c := p.index[e.off>>chunkBits].Load(); c != nil {
		c[e.off&(1<<chunkBits-1)].Store(nil)
	}
}

// freeLocked finds an unassigned usable offset, searching from p.next.
func (p *StubPool) freeLocked() (uint32, bool) {
	if uint32(len(p.byName)) >= p.usable {
		return 0, false
	}
	off := p.next
	for i := uint32(0); i < p.size; i++ {
		if off >= p.size {
			off = 0
		}
		if p.usableOffset(off) && p.slot(off) == nil {
			return off, true
		}
		off++
	}
	return 0, false
}

func (p *StubPool) slot(off uint32) *stubEntry {
	c := p.index[off>>chunkBits].Load()
	if c == nil {
		return nil
	}
	return c[off&(1<<chunkBits-1)].Load()
}

// lastActive is when an entry was last answered or used.
func (e *stubEntry) lastActive() int64 { return max(e.answered.Load(), e.used.Load()) }

// recycleLocked frees the quietest entry that may be recycled at now.
func (p *StubPool) recycleLocked(now time.Time) (uint32, bool) {
	t := now.UnixNano()
	var victim *stubEntry
	for _, e := range p.byName {
		if t-e.answered.Load() < int64(p.cfg.TTL) || t-e.lastActive() < int64(p.cfg.IdleTime) {
			continue
		}
		if victim == nil || e.lastActive() < victim.lastActive() ||
			(e.lastActive() == victim.lastActive() && e.off < victim.off) {
			victim = e
		}
	}
	if victim == nil {
		return 0, false
	}
	p.removeLocked(victim)
	return victim.off, true
}

// Len returns the number of assignments.
func (p *StubPool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byName)
}

// Entries returns every assignment, sorted by address.
func (p *StubPool) Entries() []StubEntry {
	p.mu.Lock()
	es := make([]*stubEntry, 0, len(p.byName))
	for _, e := range p.byName {
		es = append(es, e)
	}
	p.mu.Unlock()
	slices.SortFunc(es, func(a, b *stubEntry) int { return int(a.off) - int(b.off) })
	out := make([]StubEntry, len(es))
	for i, e := range es {
		out[i] = StubEntry{FQDN: e.fqdn, Addr: p.addrOf(e.off), LastAnswered: unixTime(e.answered.Load()), LastUsed: unixTime(e.used.Load())}
	}
	return out
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

const stubStateVersion = 1

type stubState struct {
	Version int          `json:"version"`
	Prefix  netip.Prefix `json:"prefix"`
	Entries []StubEntry  `json:"entries"`
}

// MarshalState returns the assignments as a JSON document for the caller to
// persist (atomically: write a temporary file and rename it).
func (p *StubPool) MarshalState() ([]byte, error) {
	return json.Marshal(stubState{Version: stubStateVersion, Prefix: p.cfg.Prefix, Entries: p.Entries()})
}

// RestoreState replaces the pool's assignments with a persisted state. Entries
// that no longer fit (outside the prefix, or on an address now reserved) are
// dropped; a state that is corrupt (undecodable, unknown version, invalid or
// duplicate names or addresses) is an error and leaves the pool unchanged, and
// the caller starts empty.
func (p *StubPool) RestoreState(b []byte) error {
	var st stubState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("stub state: %w", err)
	}
	if st.Version != stubStateVersion {
		return fmt.Errorf("stub state: unknown version %d", st.Version)
	}
	entries, err := p.decodeEntries(st.Entries)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.byName {
		p.removeLocked(e)
	}
	p.next = 1
	for _, e := range entries {
		p.insertLocked(e)
		p.next = max(p.next, e.off+1)
	}
	return nil
}

func (p *StubPool) decodeEntries(in []StubEntry) ([]*stubEntry, error) {
	names := make(map[string]bool, len(in))
	addrs := make(map[netip.Addr]bool, len(in))
	var out []*stubEntry
	for i, se := range in {
		n, err := parseName(se.FQDN)
		if err != nil || n != se.FQDN {
			return nil, fmt.Errorf("stub state: entries[%d]: invalid name %q", i, se.FQDN)
		}
		if !se.Addr.IsValid() {
			return nil, fmt.Errorf("stub state: entries[%d]: missing address", i)
		}
		if names[n] || addrs[se.Addr] {
			return nil, fmt.Errorf("stub state: entries[%d]: duplicate name or address", i)
		}
		names[n], addrs[se.Addr] = true, true
		off, ok := p.offsetOf(se.Addr)
		if !ok || !p.usableOffset(off) {
			continue
		}
		e := &stubEntry{fqdn: n, off: off}
		e.answered.Store(timeNanos(se.LastAnswered))
		e.used.Store(timeNanos(se.LastUsed))
		out = append(out, e)
	}
	return out, nil
}

func timeNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
