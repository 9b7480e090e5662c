package publisher

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// The cache's bounds. An entry holds one name's answer of one type (A or AAAA):
// at most a 255-byte name and maxCachedAddrs addresses, so the cache holds at
// most ~maxCacheEntries × 700 bytes (under 3 MiB) whatever the resolver says.
const (
	maxCacheEntries = 4096
	maxCachedAddrs  = 16
	// maxPositiveTTL caps a positive answer's TTL, so that a record changed at
	// the corporate DNS is seen within the hour even if its TTL said a week.
	maxPositiveTTL = time.Hour
	// maxNegativeTTL caps the TTL of a negative answer (RFC 2308 §5: the
	// lesser of the SOA's TTL and MINIMUM), so that a name just created is
	// reachable soon.
	maxNegativeTTL = 30 * time.Second
	// noSOANegativeTTL is how long a negative answer without an SOA is kept.
	// RFC 2308 §5 advises against caching those at all, so that two servers
	// cannot pass one between them forever; the publisher is the end of the
	// chain and never serves its cache to anyone, and a short time spares a
	// query per flow to resolvers that send no SOA (dnsmasq for its local
	// names).
	noSOANegativeTTL = 5 * time.Second
	// queryAttempt bounds one UDP exchange with the resolver; a lost datagram
	// is sent again (from a new port, with a new ID) until the lookup's
	// context ends.
	queryAttempt = 2 * time.Second
)

// Go's resolver's error texts, which reason() passes on to the client.
const (
	errTextNoSuchHost   = "no such host"
	errTextMisbehaving  = "server misbehaving"
	errTextTimeout      = "i/o timeout"
	errTextCanceled     = "operation was canceled"
	maxCNAMEChainLength = 8
)

// resolveCache resolves the names the publisher dials (TCP, UDP, ICMP echo)
// with its configured resolver: A and AAAA in parallel, each answer kept for
// its TTL (capped at maxPositiveTTL), a negative one (NXDOMAIN, or NOERROR
// with no address) for its SOA's negative TTL (capped at maxNegativeTTL).
// Concurrent lookups of one name and type share one query. Nothing is served
// past its TTL, not even when the resolver is unreachable: a stale address
// could send a flow to a host that has been renumbered, and the client is
// better told "resolve: timed out". Server failures, refusals and timeouts are
// not cached. Safe for concurrent use.
type resolveCache struct {
	server string // "ip:port"
	udp    *dns.Client
	tcp    *dns.Client
	now    func() time.Time // time.Now; tests inject their clock
	max    int              // entries, maxCacheEntries; tests lower it

	mu      sync.Mutex
	entries map[rrKey]rrEntry
	flights map[rrKey]*flight
}

// rrKey names a cached answer: a canonical (lower-case, rooted) name and A or AAAA.
type rrKey struct {
	name  string
	qtype uint16
}

// rrEntry is one answer: its addresses, or none (nxdomain tells NXDOMAIN from
// NODATA), and when it expires.
type rrEntry struct {
	addrs    []netip.Addr // never modified once stored
	nxdomain bool
	ttl      time.Duration
	expires  time.Time
}

// flight is a query in progress, which later lookups of the same key wait for.
type flight struct {
	done    chan struct{}
	waiters int // lookups waiting besides the leader, under resolveCache.mu
	ent     rrEntry
	err     error
	// abandoned is set when the query failed because its leader's context
	// ended: a waiter whose own context is alive asks again.
	abandoned bool
}

func newResolveCache(server string) *resolveCache {
	return &resolveCache{
		server:  server,
		udp:     &dns.Client{Net: "udp", Timeout: queryAttempt},
		tcp:     &dns.Client{Net: "tcp"},
		now:     time.Now,
		max:     maxCacheEntries,
		entries: make(map[rrKey]rrEntry),
		flights: make(map[rrKey]*flight),
	}
}

// lookup returns host's addresses, IPv6 first. Errors are *net.DNSError as
// Go's resolver returns them, so that callers map them to the same refusals:
// IsNotFound for NXDOMAIN or no address of either family, IsTimeout when the
// resolver did not answer in time, "server misbehaving" for other failures.
func (c *resolveCache) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if _, ok := dns.IsDomainName(host); !ok || host == "" {
		return nil, &net.DNSError{Err: errTextNoSuchHost, Name: host, IsNotFound: true}
	}
	name := dns.CanonicalName(host)
	v4, ok4 := c.cached(rrKey{name, dns.TypeA})
	v6, ok6 := c.cached(rrKey{name, dns.TypeAAAA})
	var err4, err6 error
	switch {
	case ok4 && ok6:
	case ok4:
		v6, err6 = c.get(ctx, rrKey{name, dns.TypeAAAA})
	case ok6:
		v4, err4 = c.get(ctx, rrKey{name, dns.TypeA})
	default:
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			v6, err6 = c.get(ctx, rrKey{name, dns.TypeAAAA})
		}()
		v4, err4 = c.get(ctx, rrKey{name, dns.TypeA})
		wg.Wait()
	}
	return combine(host, v4, err4, v6, err6)
}

// combine merges the A and AAAA answers: any address is a success (as Go's
// resolver ignores a failed AAAA query when A answered); otherwise NXDOMAIN
// for either type, or NODATA for both, is "no such host", and a failure is
// reported as it is.
func combine(host string, v4 rrEntry, err4 error, v6 rrEntry, err6 error) ([]netip.Addr, error) {
	if n := len(v4.addrs) + len(v6.addrs); n > 0 {
		addrs := make([]netip.Addr, 0, n)
		return append(append(addrs, v6.addrs...), v4.addrs...), nil
	}
	switch {
	case err4 == nil && v4.nxdomain, err6 == nil && v6.nxdomain:
	case err4 != nil:
		return nil, withName(err4, host)
	case err6 != nil:
		return nil, withName(err6, host)
	}
	return nil, &net.DNSError{Err: errTextNoSuchHost, Name: host, IsNotFound: true}
}

func withName(err error, host string) error {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		e := *dnsErr
		e.Name = host
		return &e
	}
	return err
}

// cached returns k's answer if it has not expired.
func (c *resolveCache) cached(k rrKey) (rrEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cachedLocked(k)
}

func (c *resolveCache) cachedLocked(k rrKey) (rrEntry, bool) {
	e, ok := c.entries[k]
	if !ok {
		return rrEntry{}, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, k)
		return rrEntry{}, false
	}
	return e, true
}

// get returns k's answer from the cache, from a query in flight, or from a new
// query that it stores.
func (c *resolveCache) get(ctx context.Context, k rrKey) (rrEntry, error) {
	for {
		c.mu.Lock()
		if e, ok := c.cachedLocked(k); ok {
			c.mu.Unlock()
			return e, nil
		}
		if f, ok := c.flights[k]; ok {
			f.waiters++
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return rrEntry{}, ctxError(ctx.Err())
			}
			if f.abandoned && ctx.Err() == nil {
				continue
			}
			return f.ent, f.err
		}
		f := &flight{done: make(chan struct{})}
		c.flights[k] = f
		c.mu.Unlock()

		f.ent, f.err = c.query(ctx, k)
		f.abandoned = f.err != nil && ctx.Err() != nil
		c.mu.Lock()
		delete(c.flights, k)
		if f.err == nil && f.ent.ttl > 0 {
			f.ent.expires = c.now().Add(f.ent.ttl)
			c.storeLocked(k, f.ent)
		}
		c.mu.Unlock()
		close(f.done)
		return f.ent, f.err
	}
}

// storeLocked adds an entry, making room first if the cache is full: expired
// entries go, then, if none had, the one closest to expiring.
func (c *resolveCache) storeLocked(k rrKey, e rrEntry) {
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		now := c.now()
		var victim rrKey
		var soonest time.Time
		for ek, ee := range c.entries {
			if !now.Before(ee.expires) {
				delete(c.entries, ek)
				continue
			}
			if soonest.IsZero() || ee.expires.Before(soonest) {
				victim, soonest = ek, ee.expires
			}
		}
		if len(c.entries) >= c.max {
			delete(c.entries, victim)
		}
	}
	c.entries[k] = e
}

// query asks the resolver, over UDP and again over TCP if the answer is
// truncated, resending over UDP after each queryAttempt without an answer.
// The exchange honours ctx's deadline; a lookup canceled before it (the PoP
// reset the stream) ends with the current attempt, at most queryAttempt later,
// and its waiters then ask again.
func (c *resolveCache) query(ctx context.Context, k rrKey) (rrEntry, error) {
	m := new(dns.Msg)
	m.SetQuestion(k.name, k.qtype)
	m.SetEdns0(1232, false) // the DNS flag day 2020 size: no IP fragments
	var r *dns.Msg
	var err error
	for {
		m.Id = dns.Id()
		r, _, err = c.udp.ExchangeContext(ctx, m, c.server)
		var ne net.Error
		if err == nil || ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() {
			break
		}
	}
	if err == nil && r.Truncated {
		// A truncated answer's addresses are valid if incomplete: keep it if
		// TCP fails.
		if full, _, terr := c.tcp.ExchangeContext(ctx, m, c.server); terr == nil {
			r = full
		}
	}
	if err != nil {
		return rrEntry{}, exchangeError(ctx, err)
	}
	return parseAnswer(r, k)
}

// parseAnswer turns the resolver's answer into an entry, following the CNAME
// chain from the question's name.
func parseAnswer(r *dns.Msg, k rrKey) (rrEntry, error) {
	if len(r.Question) > 0 && (r.Question[0].Qtype != k.qtype || !equalName(r.Question[0].Name, k.name)) {
		return rrEntry{}, &net.DNSError{Err: errTextMisbehaving, Name: k.name}
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return rrEntry{nxdomain: true, ttl: negativeTTL(r)}, nil
	case dns.RcodeServerFailure:
		return rrEntry{}, &net.DNSError{Err: errTextMisbehaving, Name: k.name, IsTemporary: true}
	default: // REFUSED and others: Go's resolver says the same
		return rrEntry{}, &net.DNSError{Err: errTextMisbehaving, Name: k.name}
	}
	owner, ttl := k.name, maxPositiveTTL
	for range maxCNAMEChainLength {
		next := ""
		for _, rr := range r.Answer {
			if cn, ok := rr.(*dns.CNAME); ok && equalName(cn.Hdr.Name, owner) {
				next, ttl = cn.Target, min(ttl, time.Duration(cn.Hdr.Ttl)*time.Second)
				break
			}
		}
		if next == "" {
			break
		}
		owner = next
	}
	var e rrEntry
	for _, rr := range r.Answer {
		if !equalName(rr.Header().Name, owner) || len(e.addrs) == maxCachedAddrs {
			continue
		}
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		}
		a, ok := netip.AddrFromSlice(ip)
		if ip == nil || !ok || rr.Header().Rrtype != k.qtype {
			continue
		}
		e.addrs = append(e.addrs, a.Unmap())
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	if len(e.addrs) == 0 { // NODATA
		return rrEntry{ttl: negativeTTL(r)}, nil
	}
	e.ttl = ttl
	return e, nil
}

// negativeTTL is how long a negative answer is kept: the lesser of its SOA's
// TTL and MINIMUM (RFC 2308 §5), at most maxNegativeTTL, or noSOANegativeTTL
// when it has no SOA.
func negativeTTL(r *dns.Msg) time.Duration {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second, maxNegativeTTL)
		}
	}
	return noSOANegativeTTL
}

func equalName(a, b string) bool {
	return dns.CanonicalName(a) == dns.CanonicalName(b)
}

// exchangeError maps a failed exchange to the *net.DNSError Go's resolver would
// return, without the resolver's address or ours in its text.
func exchangeError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctxError(ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &net.DNSError{Err: errTextTimeout, IsTimeout: true, IsTemporary: true}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return &net.DNSError{Err: opErr.Err.Error(), IsTemporary: true}
	}
	return &net.DNSError{Err: errTextMisbehaving} // a malformed answer
}

func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &net.DNSError{Err: errTextTimeout, IsTimeout: true}
	}
	return &net.DNSError{Err: errTextCanceled}
}
