package l7

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/miekg/dns"
)

func TestResolveDNSBadQuery(t *testing.T) {
	cl := NewClient(ClientConfig{Addr: "127.0.0.1:1"})
	defer cl.Close()
	for _, n := range []int{0, DNSHeaderLen - 1, MaxDNSMessage + 1} {
		if _, err := cl.ResolveDNS(context.Background(), "app", make([]byte, n)); !errors.Is(err, ErrBadQuery) {
			t.Errorf("ResolveDNS(%d bytes): %v, want ErrBadQuery", n, err)
		}
	}
	if _, err := cl.ResolveDNS(context.Background(), "app", make([]byte, DNSHeaderLen)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("ResolveDNS before Start: %v, want ErrNotConnected", err)
	}
}

// FuzzParseDNSRequest: whatever a client (at the PoP) or the PoP (at the publisher)
// sends as a DoH request, parsing does not panic; an accepted query is one DNS query
// with one question, whose name is canonical, and its body is passed on unchanged.
// (The publisher's answer check of any accepted query is fuzzed in cloud/publisher.)
func FuzzParseDNSRequest(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("wiki.corp.example.", dns.TypeAAAA)
	q.SetEdns0(1232, true)
	b, _ := q.Pack()
	f.Add(DNSMediaType, "wiki", b)
	f.Add(DNSMediaType, "wiki", b[:len(b)-3])
	f.Add("application/dns-message; x=y", "", b)
	f.Add(DNSMediaType, "a", make([]byte, DNSHeaderLen))
	f.Add("text/plain", "a", []byte("hello"))
	f.Fuzz(func(t *testing.T, contentType, app string, body []byte) {
		r := &http.Request{
			Method: http.MethodPost,
			Header: http.Header{"Content-Type": {contentType}, HeaderApp: {app}},
			Body:   io.NopCloser(bytes.NewReader(body)),
			// Unknown, as for a body sent without content-length: the bounded
			// path. (With one, HTTP/2 holds the body to it.)
			ContentLength: -1,
		}
		got, status, err := ParseDNSRequest(r)
		if (err == nil) != (status == http.StatusOK) {
			t.Fatalf("status %d with error %v", status, err)
		}
		if err != nil {
			return
		}
		if got.AppID != app || !bytes.Equal(got.Body, body) {
			t.Fatalf("parsed app %q and %d bytes from app %q and %d bytes", got.AppID, len(got.Body), app, len(body))
		}
		if got.QName == "" || dns.CanonicalName(got.QName) != got.QName {
			t.Fatalf("qname %q is not canonical", got.QName)
		}
	})
}
