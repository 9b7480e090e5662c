package publisher

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// skipWithoutICMP skips a test, loudly, where this process may open no
// ICMP socket at all (not root, and outside net.ipv4.ping_group_range).
func skipWithoutICMP(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, errNoICMP) {
		t.Skipf("SKIPPED LOUDLY: %v", err)
	}
}

// TestPingLoopback pings this host's loopback addresses: the reply is the
// kernel's, with the data sent and a measured round trip.
func TestPingLoopback(t *testing.T) {
	pg := newPinger(zaptest.NewLogger(t))
	data := []byte("ztagent ping data 0123456789")
	for _, dst := range []string{"127.0.0.1", "::1"} {
		t.Run(dst, func(t *testing.T) {
			rep, status, err := pg.ping(context.Background(), netip.MustParseAddr(dst), data)
			skipWithoutICMP(t, err)
			if err != nil {
				if dst == "::1" && status == http.StatusBadGateway {
					t.Skipf("no IPv6 loopback here: %v", err)
				}
				t.Fatalf("status %d: %v", status, err)
			}
			if !bytes.Equal(rep.Data, data) || rep.Addr != netip.MustParseAddr(dst) || rep.RTT <= 0 {
				t.Fatalf("reply %q from %s in %v", rep.Data, rep.Addr, rep.RTT)
			}
		})
	}
}

// TestPingNoReply: a host that does not answer is 504 after the timeout (or
// 502 where no route leads to it), never a reply.
func TestPingNoReply(t *testing.T) {
	pg := newPinger(zaptest.NewLogger(t))
	pg.timeout = 300 * time.Millisecond
	_, status, err := pg.ping(context.Background(), netip.MustParseAddr("198.51.100.1"), []byte("x")) // TEST-NET-2
	skipWithoutICMP(t, err)
	if err == nil || (status != http.StatusGatewayTimeout && status != http.StatusBadGateway) {
		t.Fatalf("status %d, err %v; want 504 or 502", status, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := pg.ping(ctx, netip.MustParseAddr("198.51.100.1"), nil); err == nil {
		t.Fatal("a canceled echo succeeded")
	}
}

func TestMatchReply(t *testing.T) {
	dst := netip.MustParseAddr("10.20.0.10")
	from := &net.IPAddr{IP: net.ParseIP("10.20.0.10")}
	msg := func(typ icmp.Type, id, seq int, data string) []byte {
		b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte(data)}}).Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		b    []byte
		from net.Addr
		dst  netip.Addr
		kind icmpKind
		ok   bool
	}{
		{"reply", msg(ipv4.ICMPTypeEchoReply, 7, 9, "d"), from, dst, kindRaw, true},
		{"our own request", msg(ipv4.ICMPTypeEcho, 7, 9, "d"), from, dst, kindRaw, false},
		{"other sequence", msg(ipv4.ICMPTypeEchoReply, 7, 8, "d"), from, dst, kindRaw, false},
		{"other identifier, raw", msg(ipv4.ICMPTypeEchoReply, 6, 9, "d"), from, dst, kindRaw, false},
		{"other identifier, ping socket", msg(ipv4.ICMPTypeEchoReply, 6, 9, "d"), &net.UDPAddr{IP: net.ParseIP("10.20.0.10")}, dst, kindPing, true},
		{"other host", msg(ipv4.ICMPTypeEchoReply, 7, 9, "d"), &net.IPAddr{IP: net.ParseIP("10.20.0.99")}, dst, kindRaw, false},
		{"v6 reply", msg(ipv6.ICMPTypeEchoReply, 7, 9, "d"), &net.IPAddr{IP: net.ParseIP("fd00::1")}, netip.MustParseAddr("fd00::1"), kindRaw, true},
		{"truncated", []byte{0, 0, 0}, from, dst, kindRaw, false},
		{"empty", nil, from, dst, kindRaw, false},
	}
	for _, tc := range cases {
		data, ok := matchReply(tc.b, tc.from, tc.dst, tc.kind, 7, 9)
		if ok != tc.ok || (ok && string(data) != "d") {
			t.Errorf("%s: matched %v with %q, want %v", tc.name, ok, data, tc.ok)
		}
	}
}

// FuzzMatchReply: whatever arrives on an ICMP socket, matching never panics.
func FuzzMatchReply(f *testing.F) {
	b, _ := (&icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: 7, Seq: 9, Data: []byte("d")}}).Marshal(nil)
	f.Add(b, false)
	f.Add([]byte{129, 0, 0, 0, 0, 7, 0, 9}, true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		dst := netip.MustParseAddr("10.0.0.1")
		if v6 {
			dst = netip.MustParseAddr("fd00::1")
		}
		matchReply(b, &net.IPAddr{IP: dst.AsSlice()}, dst, kindRaw, 7, 9)
	})
}
