package l3e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func goodTemplate() *Template {
	return &Template{
		V: TemplateVersion, Address: netip.MustParsePrefix("10.77.0.5/24"), MTU: 1380,
		DNS: []netip.Addr{netip.MustParseAddr("10.20.0.12")}, Suffix: "corp.test",
		Routes: []Route{
			{App: "helpdesk", Prefix: netip.MustParsePrefix("10.20.0.0/24"), TCP: "3389,5900", ICMP: true},
			{App: "voip", Prefix: netip.MustParsePrefix("10.77.0.0/24"), UDP: "*", TCP: "5060"},
		},
		KeepaliveSeconds: 10,
		DDNS: &DDNS{Server: "10.20.0.12:53", Zone: "corp.test.", KeyName: "ztagent-ddns.",
			Algorithm: "hmac-sha256", Secret: "dNtRwXD+n6KEQ8egiN9ytSBpETkvZc41RdcYLo2Qx8M=", TTL: 60},
	}
}

func TestTemplateRoundTrip(t *testing.T) {
	data, err := goodTemplate().Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTemplate(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Address != goodTemplate().Address || len(got.Routes) != 2 || got.DDNS.Secret != goodTemplate().DDNS.Secret {
		t.Fatalf("round trip changed the template: %+v", got)
	}
	if s := fmt.Sprint(got.DDNS.Secret); strings.Contains(s, "dNtR") {
		t.Fatalf("secret printed: %s", s)
	}
}

func TestTemplateRefused(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Template)
		raw   string
		wants []string
	}{
		{name: "overlap", edit: func(t *Template) {
			t.Routes = append(t.Routes, Route{Prefix: netip.MustParsePrefix("10.20.0.128/25"), TCP: "22"})
		}, wants: []string{"routes[2].prefix: 10.20.0.128/25 overlaps routes[0] (10.20.0.0/24)"}},
		{name: "host bits and no protocol", edit: func(t *Template) {
			t.Routes = []Route{{Prefix: netip.MustParsePrefix("10.1.2.3/16")}, {Prefix: netip.MustParsePrefix("10.9.0.0/16")}}
		}, wants: []string{"routes[0].prefix: 10.1.2.3/16 has host bits set (want 10.1.0.0/16)", "routes[1]: allows no protocol"}},
		{name: "bad ports", edit: func(t *Template) { t.Routes[0].TCP = "80-22"; t.Routes[1].UDP = "0" },
			wants: []string{`routes[0].tcp: port range "80-22" runs backwards`, `routes[1].udp: invalid port "0"`}},
		{name: "address and mtu", edit: func(t *Template) { t.Address = netip.MustParsePrefix("10.77.0.0/24"); t.MTU = 100 },
			wants: []string{"address: 10.77.0.0/24 is the network address", "mtu: 100 is outside"}},
		{name: "ddns", edit: func(t *Template) { t.DDNS.Zone = "corp.test"; t.DDNS.Algorithm = "hmac-md5"; t.DDNS.Secret = "x" },
			wants: []string{"ddns.zone", `ddns.algorithm: "hmac-md5" is not supported`, "ddns.secret"}},
		{name: "unknown field", raw: `{"v":1,"adress":"10.0.0.1/24"}`, wants: []string{`unknown field "adress"`}},
		{name: "trailing", raw: `{"v":1} {}`, wants: []string{"trailing data"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.edit != nil {
				tp := goodTemplate()
				tc.edit(tp)
				data, _ = json.Marshal(tp)
			}
			_, err := DecodeTemplate(data)
			var te *TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("want a *TemplateError, got %v", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A template of many routes spans several records and is reassembled whole,
// even with chunks out of order and repeated, and a newer generation replaces
// an unfinished older one.
func TestTemplateChunks(t *testing.T) {
	tp := goodTemplate()
	tp.Routes = nil
	for i := range 200 {
		tp.Routes = append(tp.Routes, Route{App: fmt.Sprintf("app-%d", i),
			Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100, byte(i), 0}), 24), TCP: "22,443,8000-8099"})
	}
	data, err := tp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	recs, err := AppendChunks(nil, 7, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 3 {
		t.Fatalf("want several chunks for %d bytes, got %d", len(data), len(recs))
	}
	for _, r := range recs {
		if len(r) > templateHeader+MaxChunk {
			t.Fatalf("record of %d bytes", len(r))
		}
	}
	var a Assembler
	old, _ := AppendChunks(nil, 6, data)
	if got, _ := a.Add(old[0]); got != nil {
		t.Fatal("one chunk made a template")
	}
	order := append([][]byte{recs[1], recs[1], recs[0]}, recs[2:]...)
	var whole []byte
	for i, r := range order {
		got, err := a.Add(r)
		if err != nil {
			t.Fatal(err)
		}
		if got != nil {
			if i != len(order)-1 {
				t.Fatalf("template complete after %d of %d chunks", i+1, len(order))
			}
			whole = got
		}
	}
	if _, err := DecodeTemplate(whole); err != nil {
		t.Fatal(err)
	}
	if _, err := AppendChunks(nil, 1, make([]byte, MaxTemplate+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized template: %v", err)
	}
}

func TestParseChunkRefuses(t *testing.T) {
	for _, rec := range [][]byte{
		nil, {TypeTemplate, 0, 0, 0, 1, 0}, {TypeTemplate, 0, 0, 0, 1, 0, 0}, {TypeTemplate, 0, 0, 0, 1, 2, 2},
		{TypeTemplate, 0, 0, 0, 1, 0, MaxChunks + 1}, {TypePacket, 0, 0, 0, 1, 0, 1},
	} {
		if _, err := ParseChunk(rec); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", rec, err)
		}
	}
}

func TestKeepalive(t *testing.T) {
	k := Keepalive(42)
	r, err := KeepaliveReply(k)
	if err != nil || r[0] != TypeKeepaliveReply || string(r[1:]) != string(k[1:]) {
		t.Fatalf("reply %x, %v", r, err)
	}
	if _, err := KeepaliveReply(k[:3]); err == nil {
		t.Fatal("short keepalive answered")
	}
	if b := Bye(strings.Repeat("x", 500)); len(b) != 1+maxBye || b[0] != TypeBye {
		t.Fatalf("bye of %d bytes", len(b))
	}
}

func FuzzTemplate(f *testing.F) {
	data, _ := goodTemplate().Encode()
	f.Add(data)
	f.Add([]byte(`{"v":1,"address":"10.0.0.1/24","mtu":1400,"routes":[{"prefix":"10.0.0.0/8","tcp":"1-2,3"}],"keepalive_s":5}`))
	f.Add([]byte(`{"routes":[{"prefix":"::/0","udp":"*"},{"prefix":"fd00::/8","icmp":true}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tp, err := DecodeTemplate(data)
		if err != nil {
			return
		}
		// What was accepted encodes, decodes again and compiles.
		again, err := tp.Encode()
		if err != nil {
			t.Fatalf("accepted template does not encode: %v", err)
		}
		if _, err := DecodeTemplate(again); err != nil {
			t.Fatalf("re-encoded template refused: %v", err)
		}
		if _, err := NewFilter(tp.Routes); err != nil {
			t.Fatalf("accepted routes do not compile: %v", err)
		}
	})
}
