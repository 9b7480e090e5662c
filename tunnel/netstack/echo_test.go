package netstack

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// echoRequest builds a valid ICMP echo request from src to dst.
func echoRequest(src, dst netip.Addr) []byte {
	payload := []byte("ztagent ping")
	if src.Is4() {
		b := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(payload))
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
			SrcAddr: addrFrom(src), DstAddr: addrFrom(dst)})
		ip.SetChecksum(^ip.CalculateChecksum())
		icmp := header.ICMPv4(b[header.IPv4MinimumSize:])
		icmp.SetType(header.ICMPv4Echo)
		icmp.SetIdent(7)
		icmp.SetSequence(1)
		copy(icmp.Payload(), payload)
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
		return b
	}
	b := make([]byte, header.IPv6MinimumSize+header.ICMPv6EchoMinimumSize+len(payload))
	ip := header.IPv6(b)
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(len(b) - header.IPv6MinimumSize), TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit: 64, SrcAddr: addrFrom(src), DstAddr: addrFrom(dst)})
	icmp := header.ICMPv6(b[header.IPv6MinimumSize:])
	icmp.SetType(header.ICMPv6EchoRequest)
	icmp.SetIdent(7)
	icmp.SetSequence(1)
	copy(icmp.Payload(), payload)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: addrFrom(src), Dst: addrFrom(dst)}))
	return b
}

// TestEchoIsNeverAnsweredByTheStack: a ping to a stub address or an app
// prefix gets no reply from the userspace stack (which would otherwise answer
// for any address, a reply no app sent), and is counted.
func TestEchoIsNeverAnsweredByTheStack(t *testing.T) {
	h := newHarness(t, Config{TCP: refuseAll})
	for _, dst := range []string{"100.64.0.9", "fd7a:115c:a1e0::9"} {
		src := clientV4
		if netip.MustParseAddr(dst).Is6() {
			src = clientV6
		}
		if !isEchoRequest(echoRequest(src, netip.MustParseAddr(dst))) {
			t.Fatalf("echo request to %s not recognised", dst)
		}
		h.inject(echoRequest(src, netip.MustParseAddr(dst)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.st.Stats().EchoDropped < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("echo requests dropped: %d, want 2", h.st.Stats().EchoDropped)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a reply, if one were sent, would be back by now
	st := h.client.Stats()
	if v4, v6 := st.ICMP.V4.PacketsReceived.EchoReply.Value(), st.ICMP.V6.PacketsReceived.EchoReply.Value(); v4+v6 != 0 {
		t.Fatalf("the client got %d + %d echo replies", v4, v6)
	}
}

func TestIsEchoRequest(t *testing.T) {
	v4 := echoRequest(clientV4, netip.MustParseAddr("100.64.0.9"))
	reply := append([]byte(nil), v4...)
	reply[header.IPv4MinimumSize] = byte(header.ICMPv4EchoReply)
	frag := append([]byte(nil), v4...)
	header.IPv4(frag).SetFlagsFragmentOffset(0, 8)
	cases := []struct {
		name string
		b    []byte
		want bool
	}{
		{"v4 echo", v4, true},
		{"v6 echo", echoRequest(clientV6, netip.MustParseAddr("fd00::9")), true},
		{"v4 echo reply", reply, false},
		{"v4 later fragment", frag, false},
		{"truncated", v4[:header.IPv4MinimumSize], false},
		{"empty", nil, false},
	}
	for _, tc := range cases {
		if got := isEchoRequest(tc.b); got != tc.want {
			t.Errorf("%s: isEchoRequest = %v, want %v", tc.name, got, tc.want)
		}
	}
}
