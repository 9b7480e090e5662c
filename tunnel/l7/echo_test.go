package l7

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// TestEchoRoundTrip: an echo crosses the wire with its host (IPv6 literals
// in brackets), app, family and data, and the reply comes back whole; a
// refusal is a *RefusedError.
func TestEchoRoundTrip(t *testing.T) {
	cc := h2Server(t, xnetServer(), func(w http.ResponseWriter, r *http.Request) {
		if !IsEchoRequest(r) {
			Refuse(w, http.StatusMethodNotAllowed, "not an echo")
			return
		}
		req, status, err := ParseEchoRequest(r)
		if err != nil {
			Refuse(w, status, err.Error())
			return
		}
		if req.AppID == "down" {
			Refuse(w, http.StatusGatewayTimeout, "no reply from "+req.Host)
			return
		}
		addr := netip.MustParseAddr("10.20.0.10")
		if req.IPv6 {
			addr = netip.MustParseAddr(req.Host)
		}
		// The reply says what the server saw: host and app in the data.
		WriteEchoReply(w, EchoReply{Data: append([]byte(req.Host+"|"+req.AppID+"|"), req.Data...), Addr: addr, RTT: 1500 * time.Microsecond})
	})
	ctx := context.Background()
	cases := []struct {
		req  EchoRequest
		addr string
	}{
		{EchoRequest{Host: "web.corp.test", AppID: "web", Data: []byte("abc")}, "10.20.0.10"},
		{EchoRequest{Host: "fd00::10", AppID: "v6", IPv6: true, Data: bytes.Repeat([]byte{7}, 1400)}, "fd00::10"},
		{EchoRequest{Host: "10.20.0.10", AppID: "ip"}, "10.20.0.10"},
	}
	for _, tc := range cases {
		rep, err := cc.Echo(ctx, tc.req)
		if err != nil {
			t.Fatalf("echo %+v: %v", tc.req.Host, err)
		}
		want := append([]byte(tc.req.Host+"|"+tc.req.AppID+"|"), tc.req.Data...)
		if !bytes.Equal(rep.Data, want) || rep.Addr != netip.MustParseAddr(tc.addr) || rep.RTT != 1500*time.Microsecond {
			t.Fatalf("echo %s: reply %q from %s rtt %v", tc.req.Host, rep.Data[:min(len(rep.Data), 40)], rep.Addr, rep.RTT)
		}
	}
	_, err := cc.Echo(ctx, EchoRequest{Host: "web.corp.test", AppID: "down"})
	var re *RefusedError
	if !errors.As(err, &re) || re.Status != http.StatusGatewayTimeout {
		t.Fatalf("refused echo: %v", err)
	}
}

func TestEchoBadRequest(t *testing.T) {
	cl := NewClient(ClientConfig{Addr: "127.0.0.1:1"})
	defer cl.Close()
	for _, req := range []EchoRequest{{AppID: "a"}, {Host: "h", Data: make([]byte, MaxEchoData+1)}} {
		if _, err := cl.Echo(context.Background(), req); !errors.Is(err, ErrBadEcho) {
			t.Errorf("Echo(%q, %d bytes): %v, want ErrBadEcho", req.Host, len(req.Data), err)
		}
	}
	if _, err := cl.Echo(context.Background(), EchoRequest{Host: "h"}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Echo before Start: %v, want ErrNotConnected", err)
	}
}

func TestParseEchoRequest(t *testing.T) {
	req := func(host, app, family string, body []byte) *http.Request {
		return &http.Request{Method: http.MethodPost, Host: host, ContentLength: -1,
			Header: http.Header{HeaderApp: {app}, HeaderEchoFamily: {family}}, Body: io.NopCloser(bytes.NewReader(body))}
	}
	cases := []struct {
		name   string
		r      *http.Request
		status int
		host   string
	}{
		{"name", req("web.corp.test", "web", "4", []byte("x")), http.StatusOK, "web.corp.test"},
		{"v6 literal", req("[fd00::1]", "web", "6", nil), http.StatusOK, "fd00::1"},
		{"v4 literal", req("10.0.0.1", "web", "4", nil), http.StatusOK, "10.0.0.1"},
		{"port", req("web.corp.test:80", "web", "4", nil), http.StatusBadRequest, ""},
		{"v6 without brackets", req("fd00::1", "web", "6", nil), http.StatusBadRequest, ""},
		{"v4 in brackets", req("[10.0.0.1]", "web", "4", nil), http.StatusBadRequest, ""},
		{"v6 with zone", req("[fe80::1%eth0]", "web", "6", nil), http.StatusBadRequest, ""},
		{"unclosed bracket", req("[fd00::1", "web", "6", nil), http.StatusBadRequest, ""},
		{"empty host", req("", "web", "4", nil), http.StatusBadRequest, ""},
		{"no app", req("web.corp.test", "", "4", nil), http.StatusBadRequest, ""},
		{"no family", req("web.corp.test", "web", "", nil), http.StatusBadRequest, ""},
		{"too large", req("web.corp.test", "web", "4", make([]byte, MaxEchoData+1)), http.StatusRequestEntityTooLarge, ""},
	}
	for _, tc := range cases {
		got, status, err := ParseEchoRequest(tc.r)
		if status != tc.status || (err == nil) != (status == http.StatusOK) || (err == nil && got.Host != tc.host) {
			t.Errorf("%s: host %q status %d err %v, want %q %d", tc.name, got.Host, status, err, tc.host, tc.status)
		}
	}
}

// FuzzParseEchoRequest: whatever arrives as an echo request, parsing does not
// panic, and an accepted host is one EchoRequest.authority gives back as it
// came.
func FuzzParseEchoRequest(f *testing.F) {
	f.Add("web.corp.test", "web", "4", []byte("x"))
	f.Add("[fd00::1]", "web", "6", []byte{})
	f.Add("[", "", "5", []byte{})
	f.Fuzz(func(t *testing.T, host, app, family string, body []byte) {
		r := &http.Request{Method: http.MethodPost, Host: host, ContentLength: -1,
			Header: http.Header{HeaderApp: {app}, HeaderEchoFamily: {family}}, Body: io.NopCloser(bytes.NewReader(body))}
		got, status, err := ParseEchoRequest(r)
		if (err == nil) != (status == http.StatusOK) {
			t.Fatalf("status %d with error %v", status, err)
		}
		if err == nil && (got.authority() != host || !bytes.Equal(got.Data, body)) {
			t.Fatalf("host %q came back as %q", host, got.authority())
		}
	})
}
