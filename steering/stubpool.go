package steering

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxStubHostBits bounds the size of a stub pool (2^24 addresses); the reverse
// index is sized by it.
const maxStubHostBits = 24

// chunkBits sizes the reverse index's chunks: 1024 slots, allocated on first use.
const chunkBits = 10

// ErrPoolExhausted is returned by Assign when every address is in use and none
// may be recycled yet.
var ErrPoolExhausted = errors.New("stub address pool exhausted")

// StubPoolConfig configures a StubPool.
type StubPoolConfig struct {
	// Prefix is the stub range, e.g. 100.64.0.0/10 (2 to 24 host bits).
	Prefix netip.Prefix
	// Reserved are never handed out: the agent's TUN and DNS addresses, the
	// apps' real prefixes, local interface prefixes.
	Reserved []netip.Prefix
	// TTL is how long an answer may be cached by clients (the stub DNS TTL); an
	// address is not recycled until TTL has passed since it was last answered.
	TTL time.Duration
	// IdleTime is how long an address must have carried no flow before it may
	// be recycled.
	IdleTime time.Duration
	// OnChange, if set, is called (without locks held) after assignments
	// change, so that the caller can persist MarshalState.
	OnChange func()
}

// StubEntry is one assignment, as Entries reports it.
type StubEntry struct {
	FQDN         string     `json:"fqdn"`
	Addr         netip.Addr `json:"addr"`
	LastAnswered time.Time  `json:"last_answered"`
	LastUsed     time.Time  `json:"last_used"`
}

// stubEntry is immutable except for its two clocks, which are atomic so that
// Touch and Assign's refresh never take the pool lock on the hot path.
type stubEntry struct {
	fqdn     string
	off      uint32
	answered atomic.Int64 // unix nanoseconds
	used     atomic.Int64
}

type stubChunk [1 << chunkBits]atomic.Pointer[stubEntry]

// StubPool hands out one stable stub address per FQDN. Lookup and Touch are
// lock-free; Assign of a new name takes a mutex. It holds no goroutines and
// reads no clock: callers pass the time.
type StubPool struct {
	cfg      StubPoolConfig
	base     u128
	size     uint32 // number of addresses in the prefix (host part)
	reserved []interval
	usable   uint32

	index []atomic.Pointer[stubChunk] // offset → entry, for Lookup

	mu     sync.Mutex
	byName map[string]*stubEntry
	next   uint32 // where the search for a free address resumes
}

// NewStubPool creates an empty pool.
func NewStubPool(cfg StubPoolConfig) (*StubPool, error) {
	p := cfg.Prefix.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	if !p.IsValid() || hostBits < 2 || hostBits > maxStubHostBits {
		return nil, fmt.Errorf("stub range %s: need between 2 and %d host bits", cfg.Prefix, maxStubHostBits)
	}
	if cfg.TTL < 0 || cfg.IdleTime < 0 {
		return nil, errors.New("stub pool: negative TTL or idle time")
	}
	cfg.Prefix = p
	sp := &StubPool{
		cfg:    cfg,
		base:   u128From(p.Addr()),
		size:   uint32(1) << hostBits,
		byName: make(map[string]*stubEntry),
		next:   1,
	}
	sp.index = make([]atomic.Pointer[stubChunk], (sp.size+(1<<chunkBits)-1)>>chunkBits)
	sp.reserve(cfg.Reserved)
	// Only the reserved offsets inside the pool are needed from here on; the
	// list can be every app prefix (tens of thousands at 10,000 apps).
	sp.cfg.Reserved = nil
	return sp, nil
}

// reserve computes the reserved offsets: every reserved prefix inside the pool
// (the first and last address are excluded by usableOffset).
func (p *StubPool) reserve(rs []netip.Prefix) {
	var ps []netip.Prefix
	for _, r := range rs {
		if r.IsValid() && r.Addr().Is4() == p.cfg.Prefix.Addr().Is4() && r.Overlaps(p.cfg.Prefix) {
			ps = append(ps, r)
		}
	}
	p.reserved = p.reserved[:0]
	for _, iv := range mergeIntervals(ps) {
		lo, hi := p.clip(iv)
		p.reserved = append(p.reserved, interval{u128{0, uint64(lo)}, u128{0, uint64(hi)}})
	}
	var n uint64
	for _, iv := range p.reserved {
		n += iv.hi.lo - iv.lo.lo + 1
	}
	p.usable = uint32(uint64(p.size) - n)
	if !p.isReserved(0) {
		p.usable--
	}
	if !p.isReserved(p.size - 1) {
		p.usable--
	}
}

// clip maps an interval overlapping the pool to pool offsets.
func (p *StubPool) clip(iv interval) (lo, hi uint32) {
	last := p.base.or(u128{0, uint64(p.size - 1)})
	if iv.lo.less(p.base) {
		iv.lo = p.base
	}
	if last.less(iv.hi) {
		iv.hi = last
	}
	return uint32(iv.lo.lo - p.base.lo), uint32(iv.hi.lo - p.base.lo)
}

func (p *StubPool) isReserved(off uint32) bool {
	_, found := slices.BinarySearchFunc(p.reserved, off, func(iv interval, off uint32) int {
		switch {
		case iv.hi.lo < uint64(off):
			return -1
		case iv.lo.lo > uint64(off):
			return 1
		}
		return 0
	})
	return found
}

func (p *StubPool) usableOffset(off uint32) bool {
	return off != 0 && off != p.size-1 && !p.isReserved(off)
}

func (p *StubPool) addrOf(off uint32) netip.Addr {
	u := p.base.or(u128{0, uint64(off)})
	return u.addr(p.cfg.Prefix.Addr().Is4())
}

// offsetOf returns a's offset in the pool.
func (p *StubPool) offsetOf(a netip.Addr) (uint32, bool) {
	a = a.Unmap()
	if !p.cfg.Prefix.Contains(a) {
		return 0, false
	}
	return uint32(u128From(a).lo - p.base.lo), true
}

// Prefix returns the pool's range.
func (p *StubPool) Prefix() netip.Prefix { return p.cfg.Prefix }

// Lookup returns the FQDN a stub address stands for. It is lock-free and does
// not allocate.
func (p *StubPool) Lookup(a netip.Addr) (fqdn string, ok bool) {
	if e := p.entryAt(a); e != nil {
		return e.fqdn, true
	}
	return "", false
}

func (p *StubPool) entryAt(a netip.Addr) *stubEntry {
	off, ok := p.offsetOf(a)
	if !ok {
		return nil
	}
	c := p.index[off>>chunkBits].Load()
	if c == nil {
		return nil
	}
	return c[off&(1<<chunkBits-1)].Load()
}

// Touch records that a flow used the stub address a at now.
func (p *StubPool) Touch(a netip.Addr, now time.Time) {
	if e := p.entryAt(a); e != nil {
		storeMax(&e.used, now.UnixNano())
	}
}

func storeMax(v *atomic.Int64, t int64) {
	for {
		old := v.Load()
		if t <= old || v.CompareAndSwap(old, t) {
			return
		}
	}
}
