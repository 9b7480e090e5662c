package agent

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/tunnel/l7"
	"github.com/ztagent/ztagent/tunnel/netstack"
	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

// echoPacket is an ICMPv4 echo request from src to dst.
func echoPacket(src, dst netip.Addr, seq uint16) []byte {
	payload := []byte("ztagent ping")
	b := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(payload))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(b[header.IPv4MinimumSize:])
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(9)
	icmp.SetSequence(seq)
	copy(icmp.Payload(), payload)
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	return b
}

// TestPingsNeverAnsweredFalsely: with the tunnel down, a ping to a steered
// app's address is carried (tried) and goes unanswered; pings to addresses
// no app steers are dropped; none gets a reply, and each is counted.
func TestPingsNeverAnsweredFalsely(t *testing.T) {
	peer, err := netstacktest.NewPeer(netstacktest.Options{Addrs: []netip.Addr{netip.MustParseAddr("10.99.0.2")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	a := newFakeAgent(t, "", func(c *Config) {
		c.NewTUN = fakeTUNOf(peer.Device())
	})
	a.start(t)
	src := netip.MustParseAddr("10.99.0.2")
	for i, dst := range []string{
		"10.30.0.7",    // app "net" by prefix (TCP 22,443): an echo has no port, so it is steered
		"10.60.0.7",    // no app
		"100.64.55.55", // a stub with no name
	} {
		if err := peer.Inject(echoPacket(src, netip.MustParseAddr(dst), uint16(i))); err != nil {
			t.Fatal(err)
		}
	}
	st := waitStatus(t, a.Agent, "pings counted", func(st ctlapi.Status) bool {
		pg := st.Flows.Pings
		return pg.Unanswered+pg.Limited == 1 && pg.NotSteered == 2
	})
	if pg := st.Flows.Pings; pg.Answered != 0 || pg.Refused != 0 || pg.Carried != pg.Unanswered {
		t.Fatalf("pings %+v", pg)
	}
	time.Sleep(50 * time.Millisecond) // a reply, if one were sent, would be back by now
	icmp := peer.Stack().Stats().ICMP.V4.PacketsReceived
	if n := icmp.EchoReply.Value() + icmp.DstUnreachable.Value(); n != 0 {
		t.Fatalf("the client got %d ICMP answers", n)
	}
}

func TestEchoLimits(t *testing.T) {
	var e echoer
	if e.admit(time.Now()) != nil {
		t.Fatal("admitted before start")
	}
	c := l7.NewClient(l7.ClientConfig{Addr: "127.0.0.1:1"})
	defer c.Close()
	e.start(c)
	now := time.Now()
	for i := range echoBurst {
		if e.admit(now) == nil {
			t.Fatalf("echo %d of a burst of %d limited", i, echoBurst)
		}
		e.done()
	}
	if e.admit(now) != nil {
		t.Fatal("an echo past the burst was admitted")
	}
	if e.admit(now.Add(2*time.Second/echoRate)) == nil {
		t.Fatal("the bucket did not refill")
	}
	e.done()
	// In flight: with tokens to spare, the slots run out.
	later := now.Add(time.Hour)
	n := 0
	for e.admit(later.Add(time.Duration(n)*time.Second)) != nil {
		n++
	}
	if n != maxEchoesInFlight {
		t.Fatalf("%d echoes in flight admitted, want %d", n, maxEchoesInFlight)
	}
	for range n {
		e.done()
	}
	if got := e.status().Limited; got != 3 {
		t.Fatalf("limited = %d, want 3", got)
	}
	e.close()
	if e.admit(later.Add(time.Hour)) != nil {
		t.Fatal("admitted after close")
	}
}

func TestEchoRefusal(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{&l7.RefusedError{Status: http.StatusForbidden}, netstack.ErrProhibited},
		{&l7.RefusedError{Status: http.StatusBadGateway}, netstack.ErrHostUnreachable},
		{&l7.RefusedError{Status: http.StatusServiceUnavailable}, netstack.ErrHostUnreachable},
		{&l7.RefusedError{Status: http.StatusGatewayTimeout}, nil},
		{&l7.RefusedError{Status: http.StatusTooManyRequests}, nil},
		{l7.ErrNotConnected, nil},
		{context.DeadlineExceeded, nil},
	}
	for _, tc := range cases {
		if got := echoRefusal(tc.err); !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
			t.Errorf("echoRefusal(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
