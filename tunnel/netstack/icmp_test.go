package netstack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

// icmpTap records the ICMP messages the stack writes toward the client.
type icmpTap struct {
	mu   sync.Mutex
	pkts [][]byte
}

func (c *icmpTap) see(pkt []byte) bool {
	switch header.IPVersion(pkt) {
	case header.IPv4Version:
		if header.IPv4(pkt).TransportProtocol() != header.ICMPv4ProtocolNumber {
			return false
		}
	case header.IPv6Version:
		if header.IPv6(pkt).TransportProtocol() != header.ICMPv6ProtocolNumber {
			return false
		}
	default:
		return false
	}
	c.mu.Lock()
	c.pkts = append(c.pkts, append([]byte(nil), pkt...))
	c.mu.Unlock()
	return false // deliver it: the client's stack checks it too
}

func (c *icmpTap) first() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pkts) == 0 {
		return nil
	}
	return c.pkts[0]
}

// TestUDPRefusedWithICMP checks that a handler refusing a flow with
// ErrPortUnreachable or ErrProhibited gets the client an ICMP destination
// unreachable with that code, from the refused destination, quoting the
// datagram, with valid checksums (the client's stack verifies them too),
// and that any other error stays silent.
func TestUDPRefusedWithICMP(t *testing.T) {
	v4 := netip.MustParseAddrPort("100.64.0.9:53")
	v6 := netip.MustParseAddrPort("[fd7a::53]:53")
	cases := []struct {
		name     string
		dst      netip.AddrPort
		err      error
		wantCode uint8 // 0: no ICMP
	}{
		{"v4 port unreachable", v4, fmt.Errorf("%w: no name", ErrPortUnreachable), uint8(header.ICMPv4PortUnreachable)},
		{"v4 prohibited", v4, fmt.Errorf("%w: UDP not carried", ErrProhibited), uint8(header.ICMPv4AdminProhibited)},
		{"v6 port unreachable", v6, ErrPortUnreachable, uint8(header.ICMPv6PortUnreachable)},
		{"v6 prohibited", v6, ErrProhibited, uint8(header.ICMPv6Prohibited)},
		{"other error: silent", v4, errors.New("PoP unreachable"), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tap := &icmpTap{}
			h := newHarness(t, Config{TCP: refuseAll, UDP: func(context.Context, Flow) (DatagramConn, error) { return nil, tc.err }},
				func(o *netstacktest.Options) { o.Drop = tap.see })
			c, err := h.dialUDP(tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			payload := []byte("query")
			c.Write(payload)
			ctx := testCtx(t)
			for h.st.Stats().UDPRefused == 0 {
				if ctx.Err() != nil {
					t.Fatal("flow never refused")
				}
				time.Sleep(time.Millisecond)
			}
			if tc.wantCode == 0 {
				time.Sleep(50 * time.Millisecond)
				if p := tap.first(); p != nil {
					t.Fatalf("ICMP sent for a plain error: %x", p)
				}
				return
			}
			var pkt []byte
			for pkt = tap.first(); pkt == nil; pkt = tap.first() {
				if ctx.Err() != nil {
					t.Fatal("no ICMP reached the client")
				}
				time.Sleep(time.Millisecond)
			}
			checkUnreachable(t, pkt, tc.dst, tc.wantCode, payload)
			stats := h.client.Stats().ICMP
			for stats.V4.PacketsReceived.DstUnreachable.Value()+stats.V6.PacketsReceived.DstUnreachable.Value() == 0 {
				if ctx.Err() != nil {
					t.Fatal("the client's stack did not take the ICMP message")
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// checkUnreachable parses an ICMP destination unreachable and checks its
// addresses, code, checksum and quote.
func checkUnreachable(t *testing.T, pkt []byte, dst netip.AddrPort, code uint8, payload []byte) {
	t.Helper()
	var src, to netip.Addr
	var body, quote []byte
	var typ, gotCode uint8
	if header.IPVersion(pkt) == header.IPv4Version {
		ip := header.IPv4(pkt)
		if !ip.IsChecksumValid() {
			t.Fatal("bad IPv4 header checksum")
		}
		src, to = netip.AddrFrom4(ip.SourceAddress().As4()), netip.AddrFrom4(ip.DestinationAddress().As4())
		body = ip.Payload()
		icmp := header.ICMPv4(body)
		typ, gotCode, quote = uint8(icmp.Type()), uint8(icmp.Code()), body[header.ICMPv4MinimumSize:]
		if checksum.Checksum(body, 0) != 0xffff {
			t.Fatal("bad ICMPv4 checksum")
		}
		if typ != uint8(header.ICMPv4DstUnreachable) {
			t.Fatalf("ICMPv4 type %d, want destination unreachable", typ)
		}
	} else {
		ip := header.IPv6(pkt)
		src, to = netip.AddrFrom16(ip.SourceAddress().As16()), netip.AddrFrom16(ip.DestinationAddress().As16())
		body = ip.Payload()
		icmp := header.ICMPv6(body)
		typ, gotCode, quote = uint8(icmp.Type()), uint8(icmp.Code()), body[header.ICMPv6DstUnreachableMinimumSize:]
		if icmp.Checksum() != header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
			Header: icmp[:header.ICMPv6DstUnreachableMinimumSize], Src: ip.SourceAddress(), Dst: ip.DestinationAddress(),
			PayloadCsum: checksum.Checksum(quote, 0), PayloadLen: len(quote),
		}) {
			t.Fatal("bad ICMPv6 checksum")
		}
		if typ != uint8(header.ICMPv6DstUnreachable) {
			t.Fatalf("ICMPv6 type %d, want destination unreachable", typ)
		}
	}
	if gotCode != code {
		t.Fatalf("code %d, want %d", gotCode, code)
	}
	if src != dst.Addr() || (to != clientV4 && to != clientV6) {
		t.Fatalf("ICMP from %s to %s, want from the refused destination %s to the client", src, to, dst.Addr())
	}
	// The quote is the refused datagram: its IP header, UDP header and data.
	var qdst netip.Addr
	var udp header.UDP
	if header.IPVersion(quote) == header.IPv4Version {
		q := header.IPv4(quote)
		qdst, udp = netip.AddrFrom4(q.DestinationAddress().As4()), header.UDP(quote[q.HeaderLength():])
	} else {
		q := header.IPv6(quote)
		qdst, udp = netip.AddrFrom16(q.DestinationAddress().As16()), header.UDP(quote[header.IPv6MinimumSize:])
	}
	if qdst != dst.Addr() || udp.DestinationPort() != dst.Port() || string(udp.Payload()) != string(payload) {
		t.Fatalf("quote is not the refused datagram: to %s port %d, data %q", qdst, udp.DestinationPort(), udp.Payload())
	}
}

func TestUnreachableNeverAnswers(t *testing.T) {
	datagram := func(src, dst string) []byte {
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
		if s.Is4() {
			b := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize)
			header.IPv4(b).Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
				SrcAddr: addrFrom(s), DstAddr: addrFrom(d)})
			return b
		}
		b := make([]byte, header.IPv6MinimumSize+header.UDPMinimumSize)
		header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: header.UDPMinimumSize, TransportProtocol: header.UDPProtocolNumber,
			HopLimit: 64, SrcAddr: addrFrom(s), DstAddr: addrFrom(d)})
		return b
	}
	cases := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"v4 unicast", datagram("10.0.0.2", "100.64.0.9"), true},
		{"v4 to multicast", datagram("10.0.0.2", "239.1.2.3"), false},
		{"v4 to broadcast", datagram("10.0.0.2", "255.255.255.255"), false},
		{"v4 from unspecified", datagram("0.0.0.0", "100.64.0.9"), false},
		{"v6 unicast", datagram("fd00::2", "fd7a::53"), true},
		{"v6 to multicast", datagram("fd00::2", "ff02::fb"), false},
		{"v6 from unspecified", datagram("::", "fd7a::53"), false},
		{"truncated", []byte{0x45, 0}, false},
		{"not IP", []byte{0x10, 0, 0, 0}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := unreachable(tc.pkt, adminProhibited); got != tc.want {
				t.Fatalf("answered = %v, want %v", got, tc.want)
			}
		})
	}
}

func addrFrom(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}
