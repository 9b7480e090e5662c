package dnsproxy

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps what is written.
type recorder struct {
	remote net.Addr
	msg    *dns.Msg
	raw    []byte
}

func (r *recorder) LocalAddr() net.Addr         { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr        { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error   { r.msg = m; return nil }
func (r *recorder) Write(b []byte) (int, error) { r.raw = b; return len(b), nil }
func (r *recorder) Close() error                { return nil }
func (r *recorder) TsigStatus() error           { return nil }
func (r *recorder) TsigTimersOnly(bool)         {}
func (r *recorder) Hijack()                     {}
func (r *recorder) Network() string             { return "udp" }

func newRecorder() *recorder {
	return &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
}

// fuzzPolicy owns a few names, IPv4 and IPv6 stubs and one without address.
func fuzzPolicy() *mapPolicy {
	return newMapPolicy(time.Minute, "wiki.corp.example", "100.64.0.1",
		"v6.corp.example", "fd7a:115c:a1e0::1", "full.corp.example", "", "x_y-1.corp.example", "100.64.0.2")
}

// FuzzQuery feeds arbitrary bytes through the paths a UDP query takes: the
// fast path, and the general one (accept filter, parsing, local answers and,
// with no upstreams, the forwarding failure path); and through the upstream
// response parser. Nothing may panic; every reply must pack and carry the
// query's ID; and whenever the fast path answers, the general path must give
// the same answer.
func FuzzQuery(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))

	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, CacheSize: -1, Policy: fuzzPolicy()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= 12 {
			q := dns.Question{Name: "wiki.corp.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
			parseResponse(data, binary.BigEndian.Uint16(data), q)
		}
		fast, _ := s.fastAnswer(data, nil, netip.AddrPort{})
		general := generalAnswer(t, s, data)
		if fast == nil {
			return
		}
		if general == nil {
			t.Fatalf("fast path answered a query the general path rejects: %x", data)
		}
		checkSame(t, data, fast, general)
	})
}

// generalAnswer runs data through the general path and returns the reply (nil
// if data is not accepted as a query).
func generalAnswer(t *testing.T, s *Server, data []byte) *dns.Msg {
	req := new(dns.Msg)
	if len(data) < 12 || req.Unpack(data) != nil {
		return nil
	}
	h := dns.Header{Id: req.Id, Bits: binary.BigEndian.Uint16(data[2:]),
		Qdcount: uint16(len(req.Question)), Ancount: uint16(len(req.Answer)),
		Nscount: uint16(len(req.Ns)), Arcount: uint16(len(req.Extra))}
	if acceptQuery(h) != dns.MsgAccept {
		return nil
	}
	w := newRecorder()
	s.ServeDNS(w, req)
	if w.msg == nil {
		t.Fatal("no reply")
	}
	out, err := w.msg.Pack()
	if err != nil {
		t.Fatalf("reply does not pack: %v\n%v", err, w.msg)
	}
	if binary.BigEndian.Uint16(out) != req.Id {
		t.Fatal("reply has another ID")
	}
	return w.msg
}

func checkSame(t *testing.T, query, fast []byte, general *dns.Msg) {
	t.Helper()
	got := new(dns.Msg)
	if err := got.Unpack(fast); err != nil {
		t.Fatalf("fast reply does not parse: %v\nquery %x", err, query)
	}
	want := new(dns.Msg)
	b, _ := general.Pack()
	want.Unpack(b) // normalise through the wire, as the client sees it
	if got.String() != want.String() {
		t.Fatalf("query %x\nfast path:\n%v\ngeneral path:\n%v", query, got, want)
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
		fast, _ := s.fastAnswer(q, nil, netip.AddrPort{})
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
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := s.fastAnswer(q, out[:0], netip.AddrPort{}); r == nil {
			b.Fatal("not answered")
		}
	}
}

// BenchmarkStubAnswerGeneral is the same answer through dns.Msg (the path of
// TCP queries and of unusual UDP ones), for comparison.
func BenchmarkStubAnswerGeneral(b *testing.B) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Policy: fuzzPolicy()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q, _ := newQuery("wiki.corp.example.", dns.TypeA).Pack()
	w := newRecorder()
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		req := new(dns.Msg)
		if err := req.Unpack(q); err != nil {
			b.Fatal(err)
		}
		s.ServeDNS(w, req)
		if _, err := w.msg.PackBuffer(buf); err != nil {
			b.Fatal(err)
		}
	}
}
