package dnsproxy

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fuzzPolicy owns a few names, IPv4 and IPv6 stubs and one without address.
func fuzzPolicy() *mapPolicy {
	return newMapPolicy(time.Minute, "wiki.corp.example", "100.64.0.1",
		"v6.corp.example", "fd7a:115c:a1e0::1", "full.corp.example", "", "x_y-1.corp.example", "100.64.0.2")
}

// FuzzQuery feeds arbitrary bytes through the paths a UDP query takes: the
// fast path, and the general one (parsing, local answers, the cache and,
// with no upstreams, the forwarding failure path). Nothing may panic; every
// reply must parse and carry the query's ID; and whenever the fast path
// answers, the general path must give the same answer.
func FuzzQuery(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))

	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Policy: fuzzPolicy()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	cached := newQuery("www.example.com.", dns.TypeA)
	cachePut(f, s.cache, cached, answerA(cached, "udp"), time.Now())
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, _, _ := s.fastAnswer(data, nil, netip.AddrPort{}, nil)
		general := generalAnswer(t, s, data)
		if fast == nil {
			return
		}
		if general == nil {
			t.Fatalf("fast path answered a query the general path drops: %x", data)
		}
		checkSame(t, data, fast, general)
	})
}

// generalAnswer runs data through the general path and returns the reply (nil
// if it is dropped).
func generalAnswer(t *testing.T, s *Server, data []byte) []byte {
	out := s.answer(data, netip.MustParseAddrPort("127.0.0.1:40000"), false)
	if out == nil {
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatalf("reply does not parse: %v\nquery %x\nreply %x", err, data, out)
	}
	if !bytes.Equal(out[:2], data[:2]) {
		t.Fatal("reply has another ID")
	}
	return out
}

func checkSame(t *testing.T, query, fast, general []byte) {
	t.Helper()
	if !bytes.Equal(fast, general) {
		t.Fatalf("query %x\nfast path:    %x\ngeneral path: %x", query, fast, general)
	}
}

func fuzzSeeds(tb testing.TB) [][]byte {
	var seeds []*dns.Msg
	for _, name := range []string{"wiki.corp.example.", "WIKI.Corp.example.", "v6.corp.example.",
		"full.corp.example.", "x_y-1.corp.example.", "www.example.com.", `w\.iki.corp.example.`} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeHTTPS, dns.TypeANY, dns.TypeMX} {
			seeds = append(seeds, newQuery(name, qt))
		}
	}
	seeds = append(seeds,
		newQuery("1.0.64.100.in-addr.arpa.", dns.TypePTR),
		newQuery("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.", dns.TypePTR))
	for _, do := range []bool{false, true} {
		m := newQuery("wiki.corp.example.", dns.TypeA)
		m.CheckingDisabled = do
		m.SetEdns0(4096, do)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		seeds = append(seeds, m)
	}
	var out [][]byte
	for _, m := range seeds {
		b, err := m.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestFastPathMatchesGeneral checks the fast path against the general one on
// the seed queries, and that it takes the ones it should.
func TestFastPathMatchesGeneral(t *testing.T) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, CacheSize: -1, Policy: fuzzPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fastCount := 0
	for _, q := range fuzzSeeds(t) {
		fast, _, _ := s.fastAnswer(q, nil, netip.AddrPort{}, nil)
		if fast == nil {
			continue
		}
		fastCount++
		checkSame(t, q, fast, generalAnswer(t, s, q))
	}
	// 4 spellings of owned names with addresses x 5 types, plus the 2 EDNS queries.
	if fastCount != 22 {
		t.Errorf("fast path answered %d seed queries, want 22", fastCount)
	}
}

// BenchmarkStubAnswer measures answering a private name on the UDP fast
// path, from query bytes to reply bytes.
func BenchmarkStubAnswer(b *testing.B) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Policy: fuzzPolicy()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q, _ := newQuery("wiki.corp.example.", dns.TypeA).Pack()
	out := make([]byte, 0, 512)
	names := newNameCache()
	b.ReportAllocs()
	for b.Loop() {
		if r, _, _ := s.fastAnswer(q, out[:0], netip.AddrPort{}, names); r == nil {
			b.Fatal("not answered")
		}
	}
}

// BenchmarkStubAnswerGeneral is the same answer on the general path (TCP
// queries and unusual UDP ones), for comparison.
func BenchmarkStubAnswerGeneral(b *testing.B) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Policy: fuzzPolicy()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q, _ := newQuery("wiki.corp.example.", dns.TypeA).Pack()
	b.ReportAllocs()
	for b.Loop() {
		if s.answer(q, netip.AddrPort{}, false) == nil {
			b.Fatal("not answered")
		}
	}
}

// FuzzAnswer feeds arbitrary bytes as an upstream's answer to a fixed query
// through what forwarding does with it: the check against the query, the
// cache (stored, then served aged) and the fitting to a small client. Nothing
// may panic; a cached answer must come back as it was stored but for the
// ID, the question's case and the TTLs; a fitted one must fit.
func FuzzAnswer(f *testing.F) {
	req := newQuery("www.example.com.", dns.TypeA)
	req.SetEdns0(1232, true)
	qb, qEnd, key := keyFor(f, req)
	for _, r := range fuzzAnswers(f, req) {
		b, err := r.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	t0 := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < headerLen {
			checkAnswer(data, 0, qb, qEnd)
			return
		}
		id := binary.BigEndian.Uint16(data)
		if _, err := checkAnswer(data, id, qb, qEnd); err != nil {
			return
		}
		if got := fit(data, nil, dns.MinMsgSize); len(got) > max(dns.MinMsgSize, len(data)) || len(got) < headerLen {
			t.Fatalf("fit: %d bytes from %d", len(got), len(data))
		}
		c := newCache(4)
		c.put(string(key), bytes.Clone(data), nil, t0)
		hit := c.appendHit(nil, qb, qEnd, key, dns.MaxMsgSize, t0.Add(time.Second))
		if hit == nil {
			return
		}
		info, _ := walkResponse(data)
		want := bytes.Clone(data)
		copy(want, qb[:2])
		copy(want[headerLen:qEnd], qb[headerLen:qEnd])
		for _, off := range info.ttlOffs {
			ttl := binary.BigEndian.Uint32(want[off:])
			binary.BigEndian.PutUint32(want[off:], max(ttl, 1)-1)
		}
		if !bytes.Equal(hit, want) {
			t.Fatalf("cached %x\nserved %x\nwant   %x", data, hit, want)
		}
	})
}

// fuzzAnswers are seed answers to req: positive with DNSSEC records and EDNS
// options, negative with a SOA, truncated, and an error without question.
func fuzzAnswers(tb testing.TB, req *dns.Msg) []*dns.Msg {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		return r
	}
	pos := answerA(req, "udp")
	pos.Answer = append(pos.Answer, rr("www.example.com. 300 IN RRSIG A 13 3 300 20261201000000 20261101000000 1234 example.com. AAAA"))
	pos.Ns = []dns.RR{rr("example.com. 3600 IN NS ns.example.com.")}
	pos.Extra = []dns.RR{rr("ns.example.com. 3600 IN A 192.0.2.53")}
	pos.SetEdns0(1232, true)
	pos.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e73"}, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2}}}
	neg := new(dns.Msg)
	neg.SetRcode(req, dns.RcodeNameError)
	neg.Ns = []dns.RR{rr("example.com. 900 IN SOA ns.example.com. h.example.com. 1 2 3 4 300")}
	tc := new(dns.Msg)
	tc.SetReply(req)
	tc.Truncated = true
	formerr := new(dns.Msg)
	formerr.SetRcode(req, dns.RcodeFormatError)
	formerr.Question = nil
	return []*dns.Msg{pos, neg, tc, formerr}
}
