package dnsproxy

import (
	"encoding/binary"
	"net"
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

// FuzzQuery feeds arbitrary bytes through the path a query takes: the accept
// filter, parsing, local answers and (with no upstreams) the forwarding
// failure path; and through the upstream response parser. Whatever comes in,
// nothing may panic, and every reply must pack and carry the query's ID.
func FuzzQuery(f *testing.F) {
	seeds := []*dns.Msg{
		newQuery("wiki.corp.example.", dns.TypeA),
		newQuery("WIKI.corp.example.", dns.TypeAAAA),
		newQuery("wiki.corp.example.", dns.TypeHTTPS),
		newQuery("1.0.64.100.in-addr.arpa.", dns.TypePTR),
		newQuery("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.", dns.TypePTR),
		newQuery("www.example.com.", dns.TypeA),
		newQuery(`w\.iki.corp.example.`, dns.TypeA),
	}
	edns := newQuery("wiki.corp.example.", dns.TypeA)
	edns.SetEdns0(4096, true)
	seeds = append(seeds, edns)
	for _, m := range seeds {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))

	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, CacheSize: -1,
		Policy: newMapPolicy(time.Minute, "wiki.corp.example", "100.64.0.1", "v6.corp.example", "fd7a:115c:a1e0::1")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= 12 {
			q := dns.Question{Name: "wiki.corp.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
			parseResponse(data, binary.BigEndian.Uint16(data), q)
		}
		req := new(dns.Msg)
		if len(data) < 12 || req.Unpack(data) != nil {
			return
		}
		h := dns.Header{Id: req.Id, Bits: binary.BigEndian.Uint16(data[2:]),
			Qdcount: uint16(len(req.Question)), Ancount: uint16(len(req.Answer)),
			Nscount: uint16(len(req.Ns)), Arcount: uint16(len(req.Extra))}
		if acceptQuery(h) != dns.MsgAccept {
			return
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
	})
}

// BenchmarkStubAnswer measures answering a private name, from the parsed query
// to the packed reply.
func BenchmarkStubAnswer(b *testing.B) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"},
		Policy: newMapPolicy(time.Minute, "wiki.corp.example", "100.64.0.1")})
	if err != nil {
		b.Fatal(err)
	}
	req := newQuery("wiki.corp.example.", dns.TypeA)
	w := newRecorder()
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		s.ServeDNS(w, req)
		if _, err := w.msg.PackBuffer(buf); err != nil {
			b.Fatal(err)
		}
	}
}
