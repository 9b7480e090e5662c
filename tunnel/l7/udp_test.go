package l7

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
)

func TestUDPPath(t *testing.T) {
	tests := []struct {
		host string
		port uint16
		path string
	}{
		{"dns.corp.test", 53, "/.well-known/masque/udp/dns.corp.test/53/"},
		{"10.1.2.3", 443, "/.well-known/masque/udp/10.1.2.3/443/"},
		{"fd00::1", 5060, "/.well-known/masque/udp/fd00%3A%3A1/5060/"},
	}
	for _, tt := range tests {
		path := UDPPath(tt.host, tt.port)
		if path != tt.path {
			t.Errorf("UDPPath(%q, %d) = %q, want %q", tt.host, tt.port, path, tt.path)
		}
		got, err := ParseTarget(udpRequest(t, path))
		if want := (Target{Host: tt.host, Port: tt.port, AppID: "app", Proto: ProtoUDP}); err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", path, got, err, want)
		}
	}
}

func udpRequest(t *testing.T, path string) *http.Request {
	u, err := url.ParseRequestURI(path)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{HeaderApp: {"app"}}
	h.Set(":protocol", ProtocolConnectUDP)
	return &http.Request{Method: http.MethodConnect, URL: u, Host: "pop.test:443", Header: h}
}

func TestParseUDPTargetBad(t *testing.T) {
	for _, path := range []string{
		"/.well-known/masque/udp/host/53", // no final slash
		"/.well-known/masque/udp/host/0/",
		"/.well-known/masque/udp/host/65536/",
		"/.well-known/masque/udp/host/+53/",
		"/.well-known/masque/udp//53/",
		"/.well-known/masque/udp/a%2Fb/53/",
		"/.well-known/masque/udp/a/b/53/",
		"/.well-known/masque/udp/%5Bfd00%3A%3A1%5D/53/",
		"/.well-known/masque/tcp/host/53/",
		"/dns-query",
	} {
		if got, err := ParseTarget(udpRequest(t, path)); err == nil {
			t.Errorf("ParseTarget(%q) = %+v, want an error", path, got)
		}
	}
}

// udpEchoHandler accepts connect-udp and echoes every datagram, as a
// publisher does through an echo server.
func udpEchoHandler(w http.ResponseWriter, r *http.Request) {
	t, err := ParseTarget(r)
	switch {
	case !IsConnectUDP(r) || err != nil:
		Refuse(w, http.StatusBadRequest, "not connect-udp")
		return
	case t.AppID == "denied":
		Refuse(w, http.StatusForbidden, "not for you")
		return
	}
	if err := Accept(w, t); err != nil {
		return
	}
	dc := ServerDatagrams(w, r.Body)
	buf := make([]byte, MaxDatagram)
	for {
		n, err := dc.Read(buf)
		if err != nil {
			return
		}
		if _, err := dc.Write(buf[:n]); err != nil {
			return
		}
	}
}

func TestDatagramEcho(t *testing.T) {
	cc := l7Server(t, udpEchoHandler)
	s, err := cc.ConnectUDP(context.Background(), "pop.test", Target{Host: "echo.test", Port: 7, AppID: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	dc := streamDatagrams(s, func() {})
	defer dc.Close()
	buf := make([]byte, MaxDatagram)
	for _, size := range []int{0, 1, 1400, 9000, MaxDatagram} {
		p := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := dc.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := dc.WaitRead(); err != nil {
			t.Fatal(err)
		}
		n, err := dc.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], p) {
			t.Fatalf("%d-byte datagram echoed as %d bytes, %v", size, n, err)
		}
	}
	if _, err := dc.Write(make([]byte, MaxDatagram+1)); !errors.Is(err, ErrDatagramTooLarge) || dc.Dropped() != 1 {
		t.Fatalf("too large: %v, %d dropped", err, dc.Dropped())
	}
	dc.Close()
	if _, err := dc.Read(buf); err == nil || err == io.EOF {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestDatagramRefused(t *testing.T) {
	cc := l7Server(t, udpEchoHandler)
	_, err := cc.ConnectUDP(context.Background(), "pop.test", Target{Host: "echo.test", Port: 7, AppID: "denied"})
	var re *RefusedError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || re.Reason != "not for you" {
		t.Fatalf("ConnectUDP: %v, want 403 not for you", err)
	}
}
