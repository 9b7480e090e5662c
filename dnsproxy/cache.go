package dnsproxy

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"time"
)

// maxCacheTTL caps how long a forwarded answer is kept, whatever its TTL, so
// that a changed record is seen within this time (CoreDNS's default too).
const maxCacheTTL = time.Hour

// maxKeyLen bounds the cache key, which is the whole query but its ID:
// queries longer than this (unusual without padding) are forwarded every
// time.
const maxKeyLen = 512

// The first byte of a cache key says which upstreams the answer came from, so
// that an answer from any upstream never answers a query that may only go to
// the local network's (Answer.Local), nor the reverse.
const (
	keyAll   = 'A'
	keyLocal = 'L'
)

// cache keeps forwarded answers, as the upstream sent them, until their TTL
// runs out. What it may serve is set by its key: every byte of the query but
// the ID, with the name in lower case (see the package documentation). It
// is bounded: when full, an expired entry is evicted if one of a few picked
// at random is, else a random one — cheap, and good enough for a resolver
// cache, where hot names are re-added at once.
type cache struct {
	max int
	mu  sync.RWMutex // readers (the query path) do not wait for one another
	m   map[string]*cacheEntry
	// ents are m's entries, in no order, for picking entries at random in
	// constant time (iterating a large map from a random start is not),
	// each with its expiry, so that a pick reads neither the map nor the
	// entry: a full cache picks up to 8 per new answer, and hashing their
	// keys and reading the entries (each a cache miss) took a tenth of the
	// agent's CPU in the DNS soak.
	ents []cacheSlot
}

type cacheSlot struct {
	e       *cacheEntry
	expires int64 // e.expires in Unix nanoseconds
}

type cacheEntry struct {
	key     string
	idx     int // the entry's index in ents
	stored  time.Time
	expires time.Time
	// full is the upstream's answer; tc, when full came over TCP after a
	// truncated UDP answer, is that truncated answer, for UDP clients that
	// full does not fit. Neither is modified once stored.
	full, tc cachedWire
}

// cachedWire is an answer in wire form with the offsets of its records'
// TTLs (OPT excepted), which are aged when it is served.
type cachedWire struct {
	b       []byte
	ttlOffs []uint16
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[string]*cacheEntry)}
}

// cacheKey appends the cache key of query b, whose question ends at qEnd, to
// dst: b without its ID, the question's name in lower case. ok is false if
// the query is too long to be cached.
func cacheKey(dst, b []byte, qEnd int) (key []byte, ok bool) {
	if len(b)-2 > maxKeyLen {
		return nil, false
	}
	start := len(dst)
	dst = append(dst, b[2:]...)
	name := dst[start+headerLen-2 : start+qEnd-2-4]
	for i, c := range name {
		name[i] = lower(c)
	}
	return dst, true
}

// lookup returns the entry for key unless it has expired; an expired entry
// is removed.
func (c *cache) lookup(key []byte, now time.Time) *cacheEntry {
	c.mu.RLock()
	e := c.m[string(key)]
	c.mu.RUnlock()
	if e == nil || now.Before(e.expires) {
		return e
	}
	c.mu.Lock()
	if c.m[string(key)] == e { // not replaced meanwhile
		c.removeLocked(e)
	}
	c.mu.Unlock()
	return nil
}

// removeLocked removes e from the cache, moving the last entry into its
// place in ents.
func (c *cache) removeLocked(e *cacheEntry) {
	last := len(c.ents) - 1
	delete(c.m, e.key)
	if e.idx != last {
		moved := c.ents[last]
		c.ents[e.idx] = moved
		moved.e.idx = e.idx
	}
	c.ents[last] = cacheSlot{}
	c.ents = c.ents[:last]
}

// put stores full, the upstream's answer to the query with the given key,
// and tc, its truncated UDP answer if full came over TCP, if full may be
// cached (see cacheTTL).
func (c *cache) put(key string, full, tc []byte, now time.Time) {
	info, ok := walkResponse(full)
	if !ok || info.qdcount != 1 {
		return
	}
	ttl := info.cacheTTL()
	if ttl == 0 {
		return
	}
	e := &cacheEntry{
		key:     key,
		stored:  now,
		expires: now.Add(min(time.Duration(ttl)*time.Second, maxCacheTTL)),
		full:    cachedWire{b: full, ttlOffs: info.ttlOffs},
	}
	if tc != nil {
		if ti, ok := walkResponse(tc); ok && ti.qdcount == 1 {
			e.tc = cachedWire{b: tc, ttlOffs: ti.ttlOffs}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, exists := c.m[key]; exists {
		e.idx = old.idx
		c.ents[e.idx] = cacheSlot{e, e.expires.UnixNano()}
		c.m[key] = e
		return
	}
	if len(c.m) >= c.max {
		c.evictLocked(now)
	}
	e.idx = len(c.ents)
	c.ents = append(c.ents, cacheSlot{e, e.expires.UnixNano()})
	c.m[key] = e
}

// appendHit appends to out the cached answer for query b (question ending at
// qEnd, cache key key), as the upstream sent it but with b's ID and
// question (the client's case) and TTLs reduced by the time spent in the
// cache. It returns nil on a miss, and when no stored answer fits maxSize
// (the client then asks the upstream, which will say how to fit it).
func (c *cache) appendHit(out, b []byte, qEnd int, key []byte, maxSize int, now time.Time) []byte {
	e := c.lookup(key, now)
	if e == nil {
		return nil
	}
	w := &e.full
	if len(w.b) > maxSize {
		if w = &e.tc; w.b == nil || len(w.b) > maxSize {
			return nil
		}
	}
	if len(w.b) < qEnd {
		return nil
	}
	start := len(out)
	out = append(out, w.b...)
	r := out[start:]
	r[0], r[1] = b[0], b[1]
	copy(r[headerLen:qEnd], b[headerLen:qEnd])
	if age := uint32(now.Sub(e.stored) / time.Second); age > 0 {
		for _, off := range w.ttlOffs {
			ttl := binary.BigEndian.Uint32(r[off:])
			binary.BigEndian.PutUint32(r[off:], max(ttl, age)-age)
		}
	}
	return out
}

func (c *cache) evictLocked(now time.Time) {
	const probes = 8
	t := now.UnixNano()
	var victim cacheSlot
	for range probes {
		if victim = c.ents[rand.IntN(len(c.ents))]; t >= victim.expires {
			break
		}
	}
	c.removeLocked(victim.e)
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
