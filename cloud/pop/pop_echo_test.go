package pop

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/netip"
	"testing"

	"golang.org/x/net/icmp"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// authorizeEcho allows echoes to the apps that authorize allows.
func (l *lab) authorizeEcho(peer *x509.Certificate, appID, host string) ([]string, error) {
	return l.authorize(peer, l7.Target{Host: host, Port: 7, AppID: appID})
}

// canPing reports whether this process may open an ICMP socket, as the
// in-process publisher must to answer echoes.
func canPing() bool {
	for _, network := range []string{"udp4", "ip4:icmp"} {
		if c, err := icmp.ListenPacket(network, "127.0.0.1"); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// TestEcho carries echoes through the PoP to the publisher, which pings the
// real host: the reply is the kernel's, with the data sent. Refusals come
// back as the PoP's or the publisher's statuses, never as a reply.
func TestEcho(t *testing.T) {
	if !canPing() {
		t.Skip("SKIPPED LOUDLY: no ICMP socket (not root, outside net.ipv4.ping_group_range)")
	}
	l := newLab(t, labOptions{})
	ctx := context.Background()
	data := bytes.Repeat([]byte("ztagent"), 200)
	for _, tc := range []struct{ host, addr string }{
		{"echo.corp.test", "127.0.0.1"},
		{"127.0.0.1", "127.0.0.1"},
		{"::1", "::1"}, // an IPv6 literal travels in brackets
	} {
		host := tc.host
		v6 := netip.MustParseAddr(tc.addr).Is6()
		rep, err := l.client.Echo(ctx, l7.EchoRequest{Host: host, AppID: appEcho, IPv6: v6, Data: data})
		if err != nil {
			t.Fatalf("echo %s: %v", host, err)
		}
		if !bytes.Equal(rep.Data, data) || rep.Addr != netip.MustParseAddr(tc.addr) || rep.RTT <= 0 {
			t.Fatalf("echo %s: %d bytes from %s in %v", host, len(rep.Data), rep.Addr, rep.RTT)
		}
	}
	refusals := []struct {
		name   string
		req    l7.EchoRequest
		status int
	}{
		{"denied by policy", l7.EchoRequest{Host: "echo.corp.test", AppID: appDenied}, http.StatusForbidden},
		{"no publisher online", l7.EchoRequest{Host: "echo.corp.test", AppID: appOffline}, http.StatusServiceUnavailable},
		{"unknown host", l7.EchoRequest{Host: "nope.corp.test", AppID: appEcho}, http.StatusBadGateway},
	}
	for _, tc := range refusals {
		_, err := l.client.Echo(ctx, tc.req)
		var re *l7.RefusedError
		if !errors.As(err, &re) || re.Status != tc.status {
			t.Errorf("%s: %v, want status %d", tc.name, err, tc.status)
		}
	}
}
