package l7

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

func TestSystemDNSServer(t *testing.T) {
	tests := []struct {
		name, conf, want string
	}{
		{"first of several", "search corp.test\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n", "10.0.0.53:53"},
		{"IPv6", "nameserver fd00::53\n", "[fd00::53]:53"},
		{"none", "search corp.test\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := systemDNSServer(path)
			if got != tt.want || (err == nil) != (tt.want != "") {
				t.Fatalf("systemDNSServer = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := systemDNSServer(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("systemDNSServer of a missing file succeeded")
	}
}

// TestAnswers: the publisher takes only an answer to its own query.
func TestAnswers(t *testing.T) {
	q := packQuery(t, "wiki.corp.test.", dns.TypeA, 0x1234)
	answer := func(edit func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("wiki.corp.test.", dns.TypeA)
		m.Id, m.Response = 0x1234, true
		edit(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		msg  []byte
		want bool
	}{
		{"answer", answer(func(*dns.Msg) {}), true},
		{"other case", answer(func(m *dns.Msg) { m.Question[0].Name = "WIKI.corp.TEST." }), true},
		{"no question", answer(func(m *dns.Msg) { m.Question = nil; m.Rcode = dns.RcodeFormatError }), true},
		{"other ID", answer(func(m *dns.Msg) { m.Id = 0x4321 }), false},
		{"not a response", answer(func(m *dns.Msg) { m.Response = false }), false},
		{"other name", answer(func(m *dns.Msg) { m.Question[0].Name = "wika.corp.test." }), false},
		{"other type", answer(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }), false},
		{"short", []byte{0x12, 0x34, 0x80}, false},
		{"cut in the question", answer(func(*dns.Msg) {})[:20], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := answers(tt.msg, q); got != tt.want {
				t.Fatalf("answers = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResolveDNSBadQuery(t *testing.T) {
	cl := NewClient(ClientConfig{Addr: "127.0.0.1:1"})
	defer cl.Close()
	for _, n := range []int{0, dnsHeaderLen - 1, maxDNSMessage + 1} {
		if _, err := cl.ResolveDNS(context.Background(), "app", make([]byte, n)); !errors.Is(err, ErrBadQuery) {
			t.Errorf("ResolveDNS(%d bytes): %v, want ErrBadQuery", n, err)
		}
	}
	if _, err := cl.ResolveDNS(context.Background(), "app", make([]byte, dnsHeaderLen)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("ResolveDNS before Start: %v, want ErrNotConnected", err)
	}
}

// FuzzParseDNSRequest: whatever a client (at the PoP) or the PoP (at the publisher)
// sends as a DoH request, parsing does not panic; an accepted query is one DNS query
// with one question, whose name is canonical, and its body is passed on unchanged.
func FuzzParseDNSRequest(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("wiki.corp.example.", dns.TypeAAAA)
	q.SetEdns0(1232, true)
	b, _ := q.Pack()
	f.Add(DNSMediaType, "wiki", b)
	f.Add(DNSMediaType, "wiki", b[:len(b)-3])
	f.Add("application/dns-message; x=y", "", b)
	f.Add(DNSMediaType, "a", make([]byte, dnsHeaderLen))
	f.Add("text/plain", "a", []byte("hello"))
	f.Fuzz(func(t *testing.T, contentType, app string, body []byte) {
		r := &http.Request{
			Method: http.MethodPost,
			Header: http.Header{"Content-Type": {contentType}, HeaderApp: {app}},
			Body:   nopCloser{bytes.NewReader(body)},
			// Unknown, as for a body sent without content-length: the bounded
			// path. (With one, HTTP/2 holds the body to it.)
			ContentLength: -1,
		}
		got, status, err := parseDNSRequest(r)
		if (err == nil) != (status == http.StatusOK) {
			t.Fatalf("status %d with error %v", status, err)
		}
		if err != nil {
			return
		}
		if got.appID != app || !bytes.Equal(got.body, body) {
			t.Fatalf("parsed app %q and %d bytes from app %q and %d bytes", got.appID, len(got.body), app, len(body))
		}
		if got.qname == "" || dns.CanonicalName(got.qname) != got.qname {
			t.Fatalf("qname %q is not canonical", got.qname)
		}
		// The publisher's answer check must cope with any accepted query.
		if end, ok := questionEnd(body); ok && end > len(body) {
			t.Fatalf("question ends at %d, past the %d-byte query", end, len(body))
		}
		answers(body, body)
	})
}

// FuzzAnswers: whatever a resolver sends back, matching it does not panic.
func FuzzAnswers(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("wiki.corp.example.", dns.TypeA)
	b, _ := q.Pack()
	f.Add(b, b)
	f.Fuzz(func(t *testing.T, msg, query []byte) {
		if len(query) < dnsHeaderLen {
			return // exchangeDNS only sees queries parseDNSQuery accepted
		}
		answers(msg, query)
	})
}
