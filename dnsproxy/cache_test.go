package dnsproxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestCacheTTL(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	req := newQuery("www.example.com.", dns.TypeA)
	resp := answerA(req, "udp") // TTL 300
	resp.Answer = append(resp.Answer, mustRR(t, "www.example.com. 100 IN A 192.0.2.2"))
	c := newCache(10)
	c.put(req, resp, t0)

	tests := []struct {
		name  string
		after time.Duration
		ttls  []uint32 // nil: a miss
	}{
		{"fresh", 0, []uint32{300, 100}},
		{"aged", 40 * time.Second, []uint32{260, 60}},
		{"aged, sub-second rounds down", 40*time.Second + 900*time.Millisecond, []uint32{260, 60}},
		{"last second", 99 * time.Second, []uint32{201, 1}},
		{"expired at the smallest TTL", 100 * time.Second, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := req.Copy()
			q.Id = 777
			q.Question[0].Name = "WWW.example.COM."
			got := c.get(q, t0.Add(tc.after))
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
			for i, rr := range got.Answer {
				if rr.Header().Ttl != tc.ttls[i] {
					t.Errorf("answer %d TTL %d, want %d", i, rr.Header().Ttl, tc.ttls[i])
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
		{"NXDOMAIN with SOA: SOA minimum", reply(dns.RcodeNameError, "", fmt.Sprintf(soa, 60)), 60 * time.Second},
		{"NODATA with SOA: SOA TTL if smaller", reply(dns.RcodeSuccess, "", "example.com. 30 IN SOA ns.example.com. h.example.com. 1 2 3 4 600"), 30 * time.Second},
		{"NXDOMAIN without SOA not stored", reply(dns.RcodeNameError, ""), 0},
		{"SERVFAIL not stored", reply(dns.RcodeServerFailure, ""), 0},
		{"REFUSED not stored", reply(dns.RcodeRefused, ""), 0},
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
			c.put(req, tc.reply(req), t0)
			stored := c.get(req, t0) != nil
			if stored != (tc.expires != 0) {
				t.Fatalf("stored = %v, want %v", stored, tc.expires != 0)
			}
			if !stored {
				return
			}
			if c.get(req, t0.Add(tc.expires-time.Second)) == nil || c.get(req, t0.Add(tc.expires)) != nil {
				t.Errorf("entry does not expire at %v", tc.expires)
			}
		})
	}
}

func TestCacheKeySeparatesFlags(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	c := newCache(10)
	plain := newQuery("x.example.", dns.TypeA)
	c.put(plain, answerA(plain, "udp"), t0)

	variants := map[string]*dns.Msg{
		"AAAA":    newQuery("x.example.", dns.TypeAAAA),
		"CD":      func() *dns.Msg { m := newQuery("x.example.", dns.TypeA); m.CheckingDisabled = true; return m }(),
		"no RD":   func() *dns.Msg { m := newQuery("x.example.", dns.TypeA); m.RecursionDesired = false; return m }(),
		"EDNS":    func() *dns.Msg { m := newQuery("x.example.", dns.TypeA); m.SetEdns0(1232, false); return m }(),
		"EDNS+DO": func() *dns.Msg { m := newQuery("x.example.", dns.TypeA); m.SetEdns0(1232, true); return m }(),
	}
	for name, q := range variants {
		if c.get(q, t0) != nil {
			t.Errorf("%s query answered from the plain query's entry", name)
		}
	}
	if c.get(newQuery("X.Example.", dns.TypeA), t0) == nil {
		t.Error("name case made a different entry")
	}
}

func TestCacheBoundedAndStripsCookies(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	c := newCache(5)
	for i := range 50 {
		q := newQuery(fmt.Sprintf("n%d.example.", i), dns.TypeA)
		c.put(q, answerA(q, "udp"), t0)
		if c.len() > 5 {
			t.Fatalf("%d entries, bound is 5", c.len())
		}
	}

	q := newQuery("cookie.example.", dns.TypeA)
	q.SetEdns0(1232, false)
	r := answerA(q, "udp")
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.Option = []dns.EDNS0{
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "01020304050607081112131415161718"},
		&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeStaleAnswer},
	}
	r.Extra = append(r.Extra, opt)
	c.put(q, r, t0)
	got := c.get(q, t0)
	if got == nil {
		t.Fatal("miss")
	}
	o := got.IsEdns0()
	if len(o.Option) != 1 || o.Option[0].Option() != dns.EDNS0EDE {
		t.Errorf("cached options %v, want the EDE only", o.Option)
	}
	if len(r.IsEdns0().Option) != 2 {
		t.Error("put modified the caller's response")
	}
}

// TestCacheWireMatchesGet holds the UDP fast path's cached answers (patched
// wire bytes) to what get gives (a re-packed copy), fresh and aged.
func TestCacheWireMatchesGet(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	c := newCache(100)
	withOPT := func(m *dns.Msg, do bool) *dns.Msg { m.SetEdns0(1232, do); return m }
	positive := func(req *dns.Msg) *dns.Msg {
		r := answerA(req, "udp")
		r.Answer = append(r.Answer,
			mustRR(t, "www.example.com. 60 IN CNAME edge.example.net."),
			mustRR(t, "edge.example.net. 20 IN A 192.0.2.7"))
		r.Ns = append(r.Ns, mustRR(t, "example.com. 3600 IN NS ns1.example.com."))
		r.AuthenticatedData = true
		if req.IsEdns0() != nil {
			withOPT(r, req.IsEdns0().Do())
		}
		return r
	}
	negative := func(req *dns.Msg) *dns.Msg {
		r := new(dns.Msg)
		r.SetRcode(req, dns.RcodeNameError)
		r.Ns = []dns.RR{mustRR(t, "example.com. 900 IN SOA ns.example.com. h.example.com. 1 2 3 4 300")}
		return r
	}
	queries := []*dns.Msg{
		newQuery("www.example.com.", dns.TypeA),
		withOPT(newQuery("www.example.com.", dns.TypeA), true),
		withOPT(newQuery("www.example.com.", dns.TypeA), false),
		newQuery("nx.example.com.", dns.TypeAAAA),
	}
	for _, q := range queries {
		if q.Question[0].Name == "nx.example.com." {
			c.put(q, negative(q), t0)
		} else {
			c.put(q, positive(q), t0)
		}
	}
	for _, q := range queries {
		for _, age := range []time.Duration{0, 15 * time.Second} {
			asked := q.Copy()
			asked.Id = 4321
			asked.Question[0].Name = strings.ToUpper(asked.Question[0].Name)
			b, _ := asked.Pack()
			var wq wireQuery
			if !parseSimpleQuery(b, &wq) {
				t.Fatalf("%v: not a simple query", asked.Question[0])
			}
			now := t0.Add(age)
			fast := c.appendWire(nil, b, &wq, string(wq.name[:wq.nameLen]), 4096, now)
			if fast == nil {
				t.Fatalf("%v age %v: fast path missed", asked.Question[0], age)
			}
			// Owner names compressed against the question take the client's
			// case on the fast path; names compare case-insensitively.
			got := new(dns.Msg)
			if err := got.Unpack(fast); err != nil {
				t.Fatal(err)
			}
			want := c.get(asked, now)
			if strings.ToLower(got.String()) != strings.ToLower(want.String()) {
				t.Errorf("age %v\nfast path:\n%v\nget:\n%v", age, got, want)
			}
		}
	}
	// Too big for the client: left to the general path, which truncates.
	b, _ := queries[0].Pack()
	var wq wireQuery
	parseSimpleQuery(b, &wq)
	if c.appendWire(nil, b, &wq, "www.example.com", 60, t0) != nil {
		t.Error("answer larger than the client's buffer served by the fast path")
	}
}

func TestTTLOffsetsRejectsGarbage(t *testing.T) {
	good, _ := answerA(newQuery("a.example.", dns.TypeA), "udp").Pack()
	if _, _, ok := ttlOffsets(good); !ok {
		t.Fatal("a valid message rejected")
	}
	for i := range len(good) - 1 {
		ttlOffsets(good[:i]) // must not panic
	}
	if _, _, ok := ttlOffsets(append(good, 0)); ok {
		t.Error("trailing byte accepted")
	}
}
