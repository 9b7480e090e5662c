package dnsproxy

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// keyFor returns the wire form of req and its cache key.
func keyFor(tb testing.TB, req *dns.Msg) ([]byte, int, []byte) {
	tb.Helper()
	b, err := req.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	q, v := parseQuery(b)
	if v != queryOK || !q.onlyOPT {
		tb.Fatalf("query %v: verdict %d, cacheable %v", req.Question[0], v, q.onlyOPT)
	}
	key, ok := cacheKey(nil, b, q.qEnd)
	if !ok {
		tb.Fatal("no cache key")
	}
	return b, q.qEnd, key
}

// cachePut stores resp as the upstream's answer to req.
func cachePut(tb testing.TB, c *cache, req, resp *dns.Msg, now time.Time) {
	tb.Helper()
	_, _, key := keyFor(tb, req)
	a, err := resp.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	c.put(string(key), a, nil, now)
}

// cacheGet returns the cached answer to req as a client with a 4096-byte
// buffer gets it, or nil.
func cacheGet(tb testing.TB, c *cache, req *dns.Msg, now time.Time) *dns.Msg {
	tb.Helper()
	b, qEnd, key := keyFor(tb, req)
	r := c.appendHit(nil, b, qEnd, key, 4096, now)
	if r == nil {
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(r); err != nil {
		tb.Fatalf("cached answer does not parse: %v", err)
	}
	return m
}

func TestCacheTTL(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	req := newQuery("www.example.com.", dns.TypeA)
	resp := answerA(req, "udp") // TTL 300
	resp.Answer = append(resp.Answer, mustRR(t, "www.example.com. 100 IN A 192.0.2.2"))
	resp.Extra = append(resp.Extra, mustRR(t, "www.example.com. 500 IN TXT extra"))
	c := newCache(10)
	cachePut(t, c, req, resp, t0)

	tests := []struct {
		name  string
		after time.Duration
		ttls  []uint32 // answer and additional; nil: a miss
	}{
		{"fresh", 0, []uint32{300, 100, 500}},
		{"aged", 40 * time.Second, []uint32{260, 60, 460}},
		{"aged, sub-second rounds down", 40*time.Second + 900*time.Millisecond, []uint32{260, 60, 460}},
		{"last second", 99 * time.Second, []uint32{201, 1, 401}},
		{"expired at the smallest TTL", 100 * time.Second, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := req.Copy()
			q.Id = 777
			q.Question[0].Name = "WWW.example.COM."
			got := cacheGet(t, c, q, t0.Add(tc.after))
			if tc.ttls == nil {
				if got != nil {
					t.Fatalf("hit after %v: %v", tc.after, got)
				}
				return
			}
			if got == nil {
				t.Fatal("miss")
			}
			if got.Id != 777 || got.Question[0].Name != "WWW.example.COM." {
				t.Errorf("ID %d question %q: want the query's", got.Id, got.Question[0].Name)
			}
			for i, rr := range append(got.Answer, got.Extra...) {
				if rr.Header().Ttl != tc.ttls[i] {
					t.Errorf("record %d TTL %d, want %d", i, rr.Header().Ttl, tc.ttls[i])
				}
			}
		})
	}
	if c.len() != 0 {
		t.Errorf("expired entry kept: %d entries", c.len())
	}
}

func TestCacheWhatIsStored(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	soa := "example.com. 3600 IN SOA ns.example.com. host.example.com. 1 7200 3600 1209600 %d"
	reply := func(rcode int, answer string, ns ...string) func(*dns.Msg) *dns.Msg {
		return func(req *dns.Msg) *dns.Msg {
			r := new(dns.Msg)
			r.SetRcode(req, rcode)
			if answer != "" {
				r.Answer = append(r.Answer, mustRR(t, answer))
			}
			for _, s := range ns {
				r.Ns = append(r.Ns, mustRR(t, s))
			}
			return r
		}
	}
	tests := []struct {
		name    string
		reply   func(*dns.Msg) *dns.Msg
		expires time.Duration // 0: not stored
	}{
		{"positive", reply(dns.RcodeSuccess, "x.example.com. 120 IN A 192.0.2.1"), 120 * time.Second},
		{"TTL 0 not stored", reply(dns.RcodeSuccess, "x.example.com. 0 IN A 192.0.2.1"), 0},
		{"TTL capped at an hour", reply(dns.RcodeSuccess, "x.example.com. 86400 IN A 192.0.2.1"), time.Hour},
		{"authority TTL counts", reply(dns.RcodeSuccess, "x.example.com. 120 IN A 192.0.2.1", "example.com. 50 IN NS ns.example.com."), 50 * time.Second},
		{"NXDOMAIN with SOA: SOA minimum", reply(dns.RcodeNameError, "", fmt.Sprintf(soa, 60)), 60 * time.Second},
		{"NODATA with SOA: SOA TTL if smaller", reply(dns.RcodeSuccess, "", "example.com. 30 IN SOA ns.example.com. h.example.com. 1 2 3 4 600"), 30 * time.Second},
		{"NXDOMAIN without SOA not stored", reply(dns.RcodeNameError, ""), 0},
		{"SERVFAIL not stored", reply(dns.RcodeServerFailure, ""), 0},
		{"REFUSED not stored", reply(dns.RcodeRefused, ""), 0},
		{"extended rcode not stored", func(req *dns.Msg) *dns.Msg {
			r := reply(dns.RcodeSuccess, "x.example.com. 120 IN A 192.0.2.1")(req)
			r.Rcode = dns.RcodeBadCookie
			r.SetEdns0(1232, false)
			return r
		}, 0},
		{"truncated not stored", func(req *dns.Msg) *dns.Msg {
			r := reply(dns.RcodeSuccess, "x.example.com. 120 IN A 192.0.2.1")(req)
			r.Truncated = true
			return r
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(10)
			req := newQuery("x.example.com.", dns.TypeA)
			cachePut(t, c, req, tc.reply(req), t0)
			stored := cacheGet(t, c, req, t0) != nil
			if stored != (tc.expires != 0) {
				t.Fatalf("stored = %v, want %v", stored, tc.expires != 0)
			}
			if !stored {
				return
			}
			if cacheGet(t, c, req, t0.Add(tc.expires-time.Second)) == nil || cacheGet(t, c, req, t0.Add(tc.expires)) != nil {
				t.Errorf("entry does not expire at %v", tc.expires)
			}
		})
	}
}

// TestCacheKeySeparatesQueries checks that a query differing in anything but
// its ID and the name's case is another entry.
func TestCacheKeySeparatesQueries(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	c := newCache(10)
	plain := newQuery("x.example.", dns.TypeA)
	cachePut(t, c, plain, answerA(plain, "udp"), t0)
	withOPT := func(size uint16, do bool, opts ...dns.EDNS0) *dns.Msg {
		m := newQuery("x.example.", dns.TypeA)
		m.SetEdns0(size, do)
		m.IsEdns0().Option = opts
		return m
	}
	ecs := func(a string, bits uint8) dns.EDNS0 {
		return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: bits, Address: net.ParseIP(a).To4()}
	}
	variants := map[string]*dns.Msg{
		"AAAA":             newQuery("x.example.", dns.TypeAAAA),
		"CD":               func() *dns.Msg { m := newQuery("x.example.", dns.TypeA); m.CheckingDisabled = true; return m }(),
		"AD":               func() *dns.Msg { m := newQuery("x.example.", dns.TypeA); m.AuthenticatedData = true; return m }(),
		"no RD":            func() *dns.Msg { m := newQuery("x.example.", dns.TypeA); m.RecursionDesired = false; return m }(),
		"EDNS":             withOPT(1232, false),
		"EDNS+DO":          withOPT(1232, true),
		"other size":       withOPT(4096, false),
		"client subnet":    withOPT(1232, false, ecs("198.51.100.0", 24)),
		"cookie":           withOPT(1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}),
		"NSID":             withOPT(1232, false, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}),
		"unknown option":   withOPT(1232, false, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1}}),
		"EDNS version one": func() *dns.Msg { m := withOPT(1232, false); m.IsEdns0().SetVersion(1); return m }(),
	}
	for name, q := range variants {
		if cacheGet(t, c, q, t0) != nil {
			t.Errorf("%s query answered from the plain query's entry", name)
		}
	}
	if cacheGet(t, c, newQuery("X.Example.", dns.TypeA), t0) == nil {
		t.Error("name case made a different entry")
	}
	// Two subnets are two entries, each with its own answer.
	for i, subnet := range []string{"198.51.100.0", "203.0.113.0"} {
		q := withOPT(1232, false, ecs(subnet, 24))
		r := answerA(q, "udp")
		r.Answer[0].(*dns.A).A = net.ParseIP(fmt.Sprintf("192.0.2.%d", 10+i))
		cachePut(t, c, q, r, t0)
	}
	for i, subnet := range []string{"198.51.100.0", "203.0.113.0"} {
		got := cacheGet(t, c, withOPT(1232, false, ecs(subnet, 24)), t0)
		if want := fmt.Sprintf("192.0.2.%d", 10+i); got == nil || rdata(got.Answer) != want {
			t.Errorf("subnet %s: %v, want %s", subnet, got, want)
		}
	}
}

func TestCacheNotForTSIG(t *testing.T) {
	q := newQuery("x.example.", dns.TypeA)
	q.SetTsig("key.", dns.HmacSHA256, 300, time.Now().Unix())
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if pq, v := parseQuery(b); v != queryOK || pq.onlyOPT {
		t.Fatalf("TSIG query: verdict %d, cacheable %v", v, pq.onlyOPT)
	}
}

// TestCacheBounded fills a small cache with more names than it holds, some
// expiring on the way, and checks the bound and that the key index stays
// consistent with the map.
func TestCacheBounded(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	c := newCache(5)
	for i := range 200 {
		now := t0.Add(time.Duration(i) * time.Second)
		q := newQuery(fmt.Sprintf("n%d.example.", i%60), dns.TypeA)
		r := answerA(q, "udp")
		r.Answer[0].Header().Ttl = uint32(1 + i%7)
		cachePut(t, c, q, r, now)
		cacheGet(t, c, newQuery(fmt.Sprintf("n%d.example.", (i*7)%60), dns.TypeA), now) // expires some
		if c.len() > 5 {
			t.Fatalf("%d entries, bound is 5", c.len())
		}
		c.mu.RLock()
		if len(c.ents) != len(c.m) {
			t.Fatalf("%d listed entries for %d in the map", len(c.ents), len(c.m))
		}
		for i, slot := range c.ents {
			if e := slot.e; c.m[e.key] != e || e.idx != i || slot.expires != e.expires.UnixNano() {
				t.Fatalf("entry %d (%x) is not the map's, not at its index, or listed with another expiry", i, e.key)
			}
		}
		c.mu.RUnlock()
	}
}

// TestCacheServesUpstreamBytes checks that a hit is the upstream's answer
// byte for byte, but for the ID, the question's case and the aged TTLs,
// whatever its records and options; and that an answer too large for the
// client comes from the cache only as the upstream's truncated one.
func TestCacheServesUpstreamBytes(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	req := newQuery("www.example.com.", dns.TypeA)
	req.SetEdns0(1232, true)
	resp := answerA(req, "udp")
	resp.Answer = append(resp.Answer,
		mustRR(t, "www.example.com. 60 IN CNAME edge.example.net."),
		mustRR(t, "edge.example.net. 20 IN A 192.0.2.7"),
		mustRR(t, "www.example.com. 300 IN RRSIG A 13 3 300 20261201000000 20261101000000 1234 example.com. AAAA"))
	resp.Ns = append(resp.Ns, mustRR(t, "example.com. 3600 IN NS ns1.example.com."))
	resp.AuthenticatedData = true
	resp.SetEdns0(1232, true)
	resp.IsEdns0().Option = []dns.EDNS0{
		&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e7331"},
		&dns.EDNS0_LOCAL{Code: 65001, Data: []byte("opaque")},
	}
	want, _ := resp.Pack()
	b, qEnd, key := keyFor(t, req)
	tc := answerA(req, "udp")
	tc.Answer, tc.Truncated = nil, true
	tcWire, _ := tc.Pack()
	c := newCache(10)
	c.put(string(key), want, tcWire, t0)

	asked := req.Copy()
	asked.Id = 4321
	asked.Question[0].Name = "WwW.example.com."
	ab, _ := asked.Pack()
	got := c.appendHit(nil, ab, qEnd, key, 4096, t0.Add(5*time.Second))
	if got == nil {
		t.Fatal("miss")
	}
	exp := append([]byte(nil), want...)
	exp[0], exp[1] = ab[0], ab[1]
	copy(exp[headerLen:qEnd], ab[headerLen:qEnd])
	if d := diffModuloTTL(got, exp); d != "" {
		t.Errorf("hit differs from the upstream's answer: %s", d)
	}
	if m := new(dns.Msg); m.Unpack(got) != nil || m.Answer[0].Header().Ttl != 295 {
		t.Errorf("TTL not aged: %v", m)
	}
	// A 512-byte client gets the truncated answer.
	small := c.appendHit(nil, b, qEnd, key, len(want)-1, t0)
	if small == nil || !equalFold(small[2:], tcWire[2:]) {
		t.Errorf("small client got %x, want the truncated answer %x", small, tcWire)
	}
	c2 := newCache(10)
	c2.put(string(key), want, nil, t0)
	if c2.appendHit(nil, b, qEnd, key, len(want)-1, t0) != nil {
		t.Error("answer larger than the client's buffer served from the cache")
	}
}

func TestWalkResponseRejectsGarbage(t *testing.T) {
	good, _ := answerA(newQuery("a.example.", dns.TypeA), "udp").Pack()
	if _, ok := walkResponse(good); !ok {
		t.Fatal("a valid message rejected")
	}
	for i := range len(good) - 1 {
		if _, ok := walkResponse(good[:i]); ok {
			t.Errorf("message cut at %d accepted", i)
		}
	}
	if _, ok := walkResponse(append(good, 0)); !ok {
		t.Error("trailing byte rejected (miekg/dns tolerates it)")
	}
	loop := append([]byte(nil), good...)
	loop[len(loop)-16], loop[len(loop)-15] = 0xC0, byte(len(loop)-16) // pointer to itself
	if _, ok := walkResponse(loop); ok {
		t.Error("forward compression pointer accepted")
	}
}
