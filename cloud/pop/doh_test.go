package pop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// packQuery is a query for name and qtype with ID id.
func packQuery(t testing.TB, name string, qtype uint16, id uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func resolve(t testing.TB, l *lab, app string, query []byte) (*dns.Msg, error) {
	t.Helper()
	b, err := l.client.ResolveDNS(context.Background(), app, query)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	return m, nil
}

// TestResolveDNS resolves names with the DNS server behind the publisher: the real
// address and the real NXDOMAIN come back, with ID 0, whatever the case of the name.
func TestResolveDNS(t *testing.T) {
	l := newLab(t, labOptions{})
	tests := []struct {
		name  string
		id    uint16
		rcode int
		addr  string
	}{
		{"echo.corp.test.", 0, dns.RcodeSuccess, "127.0.0.1"},
		{"ECHO.Corp.Test.", 0, dns.RcodeSuccess, "127.0.0.1"},
		{"echo.corp.test.", 0xbeef, dns.RcodeSuccess, "127.0.0.1"},
		{"nope.corp.test.", 0, dns.RcodeNameError, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/id=%d", tt.name, tt.id), func(t *testing.T) {
			q := packQuery(t, tt.name, dns.TypeA, tt.id)
			sent := bytes.Clone(q)
			m, err := resolve(t, l, appEcho, q)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(q, sent) {
				t.Error("ResolveDNS modified the caller's query")
			}
			if m.Id != 0 || !m.Response || m.Rcode != tt.rcode || len(m.Question) != 1 || m.Question[0].Name != tt.name {
				t.Fatalf("answer %v, want ID 0, rcode %s, question %s", m, dns.RcodeToString[tt.rcode], tt.name)
			}
			var got string
			if len(m.Answer) == 1 {
				if a, ok := m.Answer[0].(*dns.A); ok {
					got = a.A.String()
				}
			}
			if got != tt.addr || len(m.Answer) > 1 {
				t.Fatalf("answer records %v, want %q", m.Answer, tt.addr)
			}
		})
	}
}

// TestResolveDNSTruncated: a resolver that truncates over UDP is asked again over
// TCP, and the whole answer comes back; if it does not answer over TCP, the
// truncated answer comes back.
func TestResolveDNSTruncated(t *testing.T) {
	const records = 100 // about 1.6 KB: more than any UDP answer without EDNS
	for _, tcp := range []bool{true, false} {
		t.Run(fmt.Sprintf("tcp=%v", tcp), func(t *testing.T) {
			addr, tcpQueries := startTruncatingDNS(t, "big.corp.test.", records, tcp)
			l := newLab(t, labOptions{dnsServer: addr})
			m, err := resolve(t, l, appEcho, packQuery(t, "big.corp.test.", dns.TypeA, 0))
			if err != nil {
				t.Fatal(err)
			}
			want := records
			if !tcp {
				want = 0
			}
			if m.Truncated == tcp || len(m.Answer) != want || m.Id != 0 {
				t.Fatalf("answer TC=%v with %d records and ID %d, want TC=%v, %d records, ID 0", m.Truncated, len(m.Answer), m.Id, !tcp, want)
			}
			if n := tcpQueries.Load(); tcp && n != 1 {
				t.Fatalf("%d queries over TCP, want 1", n)
			}
		})
	}
}

// startTruncatingDNS answers name over UDP with an empty truncated answer and, if
// tcp, over TCP on the same port with n A records. It counts the TCP queries.
func startTruncatingDNS(t testing.TB, name string, n int, tcp bool) (string, *atomic.Int64) {
	var tcpQueries atomic.Int64
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncated = true
			w.WriteMsg(m)
			return
		}
		tcpQueries.Add(1)
		for i := range n {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(10, 0, byte(i>>8), byte(i)),
			})
		}
		w.WriteMsg(m)
	})
	pc, ln := listenUDPAndTCP(t)
	servers := []*dns.Server{{PacketConn: pc, Handler: handler}}
	if tcp {
		servers = append(servers, &dns.Server{Listener: ln, Handler: handler})
	} else {
		ln.Close() // the port refuses TCP connections
	}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { srv.Shutdown(); <-done })
	}
	return pc.LocalAddr().String(), &tcpQueries
}

// listenUDPAndTCP listens on the same loopback port for UDP and TCP.
func listenUDPAndTCP(t testing.TB) (net.PacketConn, net.Listener) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil
}

func TestResolveDNSRefused(t *testing.T) {
	l := newLab(t, labOptions{})
	twoQuestions := new(dns.Msg)
	twoQuestions.SetQuestion("echo.corp.test.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	twoQuestions.Id = 0
	twoQ, _ := twoQuestions.Pack()
	response := new(dns.Msg)
	response.SetQuestion("echo.corp.test.", dns.TypeA)
	response.Response, response.Id = true, 0
	resp, _ := response.Pack()
	tests := []struct {
		name   string
		app    string
		query  []byte
		status int
		reason string
	}{
		{"policy denies app", appDenied, packQuery(t, "echo.corp.test.", dns.TypeA, 0), http.StatusForbidden, "user is not allowed to reach app denied"},
		{"policy denies name", appEcho, packQuery(t, "www.example.com.", dns.TypeA, 0), http.StatusForbidden, "name www.example.com. is not in app echo"},
		{"no publisher online", appOffline, packQuery(t, "echo.corp.test.", dns.TypeA, 0), http.StatusServiceUnavailable, "no publisher of app offline is online"},
		{"garbage", appEcho, bytes.Repeat([]byte{0xff}, 40), http.StatusBadRequest, "malformed DNS query"},
		{"two questions", appEcho, twoQ, http.StatusBadRequest, "DNS query with 2 questions, want 1"},
		{"no question", appEcho, make([]byte, l7.DNSHeaderLen), http.StatusBadRequest, "DNS query with 0 questions, want 1"},
		{"a response", appEcho, resp, http.StatusBadRequest, "DNS message is a response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.client.ResolveDNS(context.Background(), tt.app, tt.query)
			wantRefused(t, err, tt.status, tt.reason)
		})
	}
}

func wantRefused(t *testing.T, err error, status int, reason string) {
	t.Helper()
	var re *l7.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, l7.ErrRefused) {
		t.Fatalf("ResolveDNS: %v (%T), want *RefusedError", err, err)
	}
	if re.Status != status || !strings.Contains(re.Reason, reason) {
		t.Fatalf("refused %d %q, want %d containing %q", re.Status, re.Reason, status, reason)
	}
}

// TestResolveDNSResolverFails: a resolver that refuses is a 502, one that never
// answers a 504 from the publisher, and a publisher that does not answer in time a
// 504 from the PoP (which resets the publisher's stream).
func TestResolveDNSResolverFails(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tests := []struct {
		name   string
		opts   labOptions
		status int
		reason string
	}{
		{"resolver down", labOptions{dnsServer: closedUDPAddr(t)}, http.StatusBadGateway, "resolve echo.corp.test.: read: connection refused"},
		{"resolver silent", labOptions{dnsServer: silent.LocalAddr().String(), pubDialTimeout: 100 * time.Millisecond},
			http.StatusGatewayTimeout, "resolve echo.corp.test.: timed out"},
		{"publisher late", labOptions{dnsServer: silent.LocalAddr().String(), popOpenTimeout: 100 * time.Millisecond, pubDialTimeout: time.Hour},
			http.StatusGatewayTimeout, "publisher pub-1: publisher did not answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, tt.opts)
			_, err := l.client.ResolveDNS(context.Background(), appEcho, packQuery(t, "echo.corp.test.", dns.TypeA, 0))
			wantRefused(t, err, tt.status, tt.reason)
		})
	}
}

// closedUDPAddr is a loopback UDP address where nothing listens.
func closedUDPAddr(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// TestDoHRequests sends DoH requests that ResolveDNS would not, straight on the
// client's connection.
func TestDoHRequests(t *testing.T) {
	l := newLab(t, labOptions{})
	query := packQuery(t, "echo.corp.test.", dns.TypeA, 0)
	tests := []struct {
		name   string
		mutate func(*http.Request)
		status int
	}{
		{"ok", func(*http.Request) {}, http.StatusOK},
		{"content type with parameters", func(r *http.Request) { r.Header.Set("Content-Type", l7.DNSMediaType+"; charset=binary") }, http.StatusOK},
		{"no app", func(r *http.Request) { r.Header.Del(l7.HeaderApp) }, http.StatusBadRequest},
		{"wrong content type", func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, http.StatusUnsupportedMediaType},
		{"oversized, streamed", func(r *http.Request) {
			r.Body, r.ContentLength = nopCloser{bytes.NewReader(make([]byte, l7.MaxDNSMessage+1))}, -1
		}, http.StatusRequestEntityTooLarge},
		{"oversized, declared", func(r *http.Request) {
			r.Body, r.ContentLength = nopCloser{bytes.NewReader(make([]byte, l7.MaxDNSMessage+1))}, l7.MaxDNSMessage+1
		}, http.StatusRequestEntityTooLarge},
		{"streamed", func(r *http.Request) { r.Body, r.ContentLength = nopCloser{bytes.NewReader(query)}, -1 }, http.StatusOK},
		{"GET", func(r *http.Request) { r.Method, r.Body, r.ContentLength = http.MethodGet, nil, 0 }, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newDNSRequest(l.popAddr, appEcho, query)
			tt.mutate(req)
			resp, err := l.rawConn().RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("%s (%s), want %d", resp.Status, resp.Header.Get(l7.HeaderReason), tt.status)
			}
		})
	}
}

// newDNSRequest is the DoH POST that ResolveDNS sends, as an *http.Request for
// x/net's transport.
func newDNSRequest(authority, app string, query []byte) *http.Request {
	return &http.Request{
		Method: http.MethodPost,
		URL:    &url.URL{Scheme: "https", Host: authority, Path: l7.DNSPath},
		Host:   authority,
		Header: http.Header{
			l7.HeaderApp:   {app},
			"Content-Type": {l7.DNSMediaType},
			"Accept":       {l7.DNSMediaType},
		},
		Body:          nopCloser{bytes.NewReader(query)},
		ContentLength: int64(len(query)),
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
