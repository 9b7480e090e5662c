package dnsproxy

import (
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
	mu  sync.Mutex
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
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[cacheKey]*cacheEntry)}
}

func keyOf(req *dns.Msg) cacheKey {
	q := req.Question[0]
	k := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, qclass: q.Qclass}
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

// get returns a fresh copy of the cached answer to req, with req's ID and
// question and the TTLs reduced by the time spent in the cache, or nil.
func (c *cache) get(req *dns.Msg, now time.Time) *dns.Msg {
	k := keyOf(req)
	c.mu.Lock()
	e := c.m[k]
	if e != nil && !now.Before(e.expires) {
		delete(c.m, k)
		e = nil
	}
	c.mu.Unlock()
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
	k := keyOf(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.m[k]; !exists && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[k] = e
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
	c.mu.Lock()
	defer c.mu.Unlock()
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
