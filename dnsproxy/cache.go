package dnsproxy

import (
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxCacheTTL caps how long a forwarded answer is kept, whatever its TTL, so
// that a changed record is seen within this time (CoreDNS's default too).
const maxCacheTTL = time.Hour

// cache keeps forwarded answers until their TTL runs out. It is bounded: when
// full, an expired entry is evicted if one is found quickly, else an arbitrary
// one (Go's map order is randomised, which makes this random eviction — cheap
// and good enough for a resolver cache, where hot names are re-added at once).
type cache struct {
	max int
	mu  sync.RWMutex // readers (the query path) do not wait for one another
	m   map[cacheKey]*cacheEntry
}

// cacheKey holds everything in a query that changes the answer: the question,
// and the flags that decide whether DNSSEC records and validation status are
// returned and whether an OPT record is expected back.
type cacheKey struct {
	name   string // lower case
	qtype  uint16
	qclass uint16
	flags  uint8
}

const (
	keyRD = 1 << iota
	keyCD
	keyEDNS
	keyDO
)

type cacheEntry struct {
	msg     *dns.Msg // never modified once stored
	stored  time.Time
	expires time.Time
	// wire is msg packed, for the UDP fast path (nil if it could not be
	// packed or walked); ttlOffs are the offsets of its records' TTLs (OPT
	// excepted) and qEnd the end of its question.
	wire    []byte
	ttlOffs []uint16
	qEnd    int
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[cacheKey]*cacheEntry)}
}

func keyOf(req *dns.Msg) cacheKey {
	q := req.Question[0]
	// The name is in Policy form (no trailing dot) so that the fast path,
	// which parses names that way, finds the same entries.
	k := cacheKey{name: strings.ToLower(strings.TrimSuffix(q.Name, ".")), qtype: q.Qtype, qclass: q.Qclass}
	if req.RecursionDesired {
		k.flags |= keyRD
	}
	if req.CheckingDisabled {
		k.flags |= keyCD
	}
	if opt := req.IsEdns0(); opt != nil {
		k.flags |= keyEDNS
		if opt.Do() {
			k.flags |= keyDO
		}
	}
	return k
}

// lookup returns the entry for k unless it has expired; an expired entry is
// removed.
func (c *cache) lookup(k cacheKey, now time.Time) *cacheEntry {
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	if e == nil || now.Before(e.expires) {
		return e
	}
	c.mu.Lock()
	if c.m[k] == e { // not replaced meanwhile
		delete(c.m, k)
	}
	c.mu.Unlock()
	return nil
}

// get returns a fresh copy of the cached answer to req, with req's ID and
// question and the TTLs reduced by the time spent in the cache, or nil.
func (c *cache) get(req *dns.Msg, now time.Time) *dns.Msg {
	e := c.lookup(keyOf(req), now)
	if e == nil {
		return nil
	}
	resp := e.msg.Copy()
	resp.Id = req.Id
	resp.Question[0].Name = req.Question[0].Name // keep the client's 0x20 case
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns, resp.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			h.Ttl = max(h.Ttl, age) - age
		}
	}
	return resp
}

// put stores resp, the upstream's answer to req, if it may be cached: a
// complete NOERROR or NXDOMAIN answer with a positive TTL (for negative
// answers, from the SOA per RFC 2308).
func (c *cache) put(req, resp *dns.Msg, now time.Time) {
	ttl, ok := cacheTTL(resp)
	if !ok || len(resp.Question) != 1 {
		return
	}
	stored := resp.Copy()
	stored.Compress = true // served re-packed; keep it as small as the original
	stripCookie(stored)
	e := &cacheEntry{msg: stored, stored: now, expires: now.Add(min(ttl, maxCacheTTL))}
	if wire, err := stored.Pack(); err == nil {
		if offs, qEnd, ok := ttlOffsets(wire); ok {
			e.wire, e.ttlOffs, e.qEnd = wire, offs, qEnd
		}
	}
	k := keyOf(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.m[k]; !exists && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[k] = e
}

// appendWire appends to out the cached answer to the simple query q (raw
// bytes b), as get would give it, and returns nil on a miss or when the
// answer does not fit maxSize.
func (c *cache) appendWire(out, b []byte, q *wireQuery, name string, maxSize int, now time.Time) []byte {
	k := cacheKey{name: name, qtype: q.qtype, qclass: dns.ClassINET}
	if q.flags&flagRD != 0 {
		k.flags |= keyRD
	}
	if q.flags&flagCD != 0 {
		k.flags |= keyCD
	}
	if q.edns {
		k.flags |= keyEDNS
		if q.do {
			k.flags |= keyDO
		}
	}
	e := c.lookup(k, now)
	if e == nil || e.wire == nil || len(e.wire) > maxSize || e.qEnd != q.qEnd {
		return nil
	}
	start := len(out)
	out = append(out, e.wire...)
	r := out[start:]
	r[0], r[1] = b[0], b[1]                        // the client's ID
	copy(r[headerLen:q.qEnd], b[headerLen:q.qEnd]) // and question, case kept
	if age := uint32(now.Sub(e.stored) / time.Second); age > 0 {
		for _, off := range e.ttlOffs {
			ttl := binary.BigEndian.Uint32(r[off:])
			binary.BigEndian.PutUint32(r[off:], max(ttl, age)-age)
		}
	}
	return out
}

// ttlOffsets walks a packed message and returns the offsets of the TTLs of
// its records, OPT excepted, and the end of its single question.
func ttlOffsets(m []byte) (offs []uint16, qEnd int, ok bool) {
	if len(m) < headerLen || binary.BigEndian.Uint16(m[4:]) != 1 {
		return nil, 0, false
	}
	off, ok := skipName(m, headerLen)
	if !ok || off+4 > len(m) {
		return nil, 0, false
	}
	qEnd = off + 4
	off = qEnd
	n := int(binary.BigEndian.Uint16(m[6:])) + int(binary.BigEndian.Uint16(m[8:])) + int(binary.BigEndian.Uint16(m[10:]))
	for range n {
		if off, ok = skipName(m, off); !ok || off+10 > len(m) || off+4 > 0xFFFF {
			return nil, 0, false
		}
		if binary.BigEndian.Uint16(m[off:]) != dns.TypeOPT {
			offs = append(offs, uint16(off+4))
		}
		off += 10 + int(binary.BigEndian.Uint16(m[off+8:]))
	}
	return offs, qEnd, off == len(m)
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(m []byte, off int) (int, bool) {
	for off < len(m) {
		l := int(m[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			return off + 2, off+2 <= len(m)
		case l&0xC0 != 0:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

func (c *cache) evictLocked(now time.Time) {
	const probes = 8
	n := 0
	var victim cacheKey
	for k, e := range c.m {
		victim = k
		if !now.Before(e.expires) || n == probes {
			break
		}
		n++
	}
	delete(c.m, victim)
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

func cacheTTL(resp *dns.Msg) (time.Duration, bool) {
	if resp.Truncated || (resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError) {
		return 0, false
	}
	var ttl uint32
	found := false
	minTTL := func(t uint32) {
		if !found || t < ttl {
			ttl, found = t, true
		}
	}
	if len(resp.Answer) > 0 && resp.Rcode == dns.RcodeSuccess {
		for _, rr := range resp.Answer {
			minTTL(rr.Header().Ttl)
		}
		for _, rr := range resp.Ns {
			minTTL(rr.Header().Ttl)
		}
	} else {
		// Negative answer: cacheable only with a SOA (RFC 2308 5).
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				minTTL(min(soa.Hdr.Ttl, soa.Minttl))
			}
		}
	}
	if !found || ttl == 0 {
		return 0, false
	}
	return time.Duration(ttl) * time.Second, true
}

// stripCookie removes DNS cookies (RFC 7873) from a response before it is
// cached: a server cookie belongs to the client that asked, and must not be
// handed to another one.
func stripCookie(m *dns.Msg) {
	opt := m.IsEdns0()
	if opt == nil {
		return
	}
	opts := opt.Option[:0]
	for _, o := range opt.Option {
		if o.Option() != dns.EDNS0COOKIE {
			opts = append(opts, o)
		}
	}
	opt.Option = opts
}
