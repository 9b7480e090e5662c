package netstack

import (
	"errors"
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

// verifyEchoReply checks that b is a well-formed echo reply to e carrying
// data: addresses swapped, identifier, sequence number and data kept, every
// checksum valid.
func verifyEchoReply(t *testing.T, b []byte, e Echo, data []byte) {
	t.Helper()
	if !checksumsValid(b) {
		t.Fatal("reply's IP header is invalid")
	}
	var icmp []byte
	var src, dst netip.Addr
	switch header.IPVersion(b) {
	case header.IPv4Version:
		icmp = b[header.IPv4MinimumSize:]
		src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		if icmp[0] != byte(header.ICMPv4EchoReply) || checksum.Checksum(icmp, 0) != 0xffff {
			t.Fatalf("not a valid ICMPv4 echo reply: type %d", icmp[0])
		}
	case header.IPv6Version:
		icmp = b[header.IPv6MinimumSize:]
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		if icmp[0] != byte(header.ICMPv6EchoReply) ||
			checksum.Checksum(icmp, pseudoHeaderSum(58, b[8:24], b[24:40], len(icmp))) != 0xffff {
			t.Fatalf("not a valid ICMPv6 echo reply: type %d", icmp[0])
		}
	default:
		t.Fatal("not IP")
	}
	if src != e.Dst || dst != e.Src {
		t.Fatalf("reply %s -> %s, want %s -> %s", src, dst, e.Dst, e.Src)
	}
	h := header.ICMPv4(icmp)
	if h.Ident() != e.ID || h.Sequence() != e.Seq || string(icmp[8:]) != string(data) {
		t.Fatalf("reply id %d seq %d data %q, want %d %d %q", h.Ident(), h.Sequence(), icmp[8:], e.ID, e.Seq, data)
	}
}

func TestParseEchoAndReply(t *testing.T) {
	for _, dst := range []string{"100.64.0.9", "fd7a:115c:a1e0::9"} {
		d := netip.MustParseAddr(dst)
		src := clientV4
		if d.Is6() {
			src = clientV6
		}
		t.Run(dst, func(t *testing.T) {
			req := echoRequest(src, d)
			e, ok := parseEcho(req)
			if !ok {
				t.Fatal("valid echo request not parsed")
			}
			if e.Src != src || e.Dst != d || e.ID != 7 || e.Seq != 1 || string(e.Data) != "ztagent ping" {
				t.Fatalf("parsed %+v", e)
			}
			req[len(req)-1] = 'X' // parseEcho copied what it keeps
			if string(e.Data) != "ztagent ping" {
				t.Fatal("Data aliases the packet")
			}
			verifyEchoReply(t, echoReply(e, e.Data), e, e.Data)
			verifyEchoReply(t, echoReply(e, nil), e, nil)
			big := make([]byte, 1400)
			verifyEchoReply(t, echoReply(e, big), e, big)
		})
	}
}

func TestParseEchoRejects(t *testing.T) {
	v4 := func(mutate func(b []byte)) []byte {
		b := echoRequest(clientV4, netip.MustParseAddr("100.64.0.9"))
		mutate(b)
		return b
	}
	v6 := func(mutate func(b []byte)) []byte {
		b := echoRequest(clientV6, netip.MustParseAddr("fd00::9"))
		mutate(b)
		return b
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"v4 bad ICMP checksum", v4(func(b []byte) { b[len(b)-1] ^= 1 })},
		{"v6 bad ICMP checksum", v6(func(b []byte) { b[len(b)-1] ^= 1 })},
		{"v4 nonzero code", v4(func(b []byte) { b[header.IPv4MinimumSize+1] = 1 })},
		{"v4 first fragment", v4(func(b []byte) {
			header.IPv4(b).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
			header.IPv4(b).SetChecksum(0)
			header.IPv4(b).SetChecksum(^header.IPv4(b).CalculateChecksum())
		})},
		{"v4 total length past the end", v4(func(b []byte) { header.IPv4(b).SetTotalLength(uint16(len(b) + 10)) })},
		{"v4 truncated ICMP", echoRequest(clientV4, netip.MustParseAddr("100.64.0.9"))[:header.IPv4MinimumSize+4]},
		{"v6 truncated", echoRequest(clientV6, netip.MustParseAddr("fd00::9"))[:header.IPv6MinimumSize+4]},
		{"empty", nil},
	}
	for _, tc := range cases {
		if _, ok := parseEcho(tc.b); ok {
			t.Errorf("%s: parsed", tc.name)
		}
	}
}

// TestEchoHandlerReplies: an echo goes to the handler, and ReplyEcho and
// RefuseEcho reach the client as a valid echo reply and a valid ICMP
// destination unreachable (the peer checks every checksum).
func TestEchoHandlerReplies(t *testing.T) {
	echoes := make(chan Echo, 4)
	h := newHarness(t, Config{TCP: refuseAll, Echo: func(e Echo) { echoes <- e }})
	for _, dst := range []string{"100.64.0.9", "fd7a:115c:a1e0::9"} {
		d := netip.MustParseAddr(dst)
		src := clientV4
		if d.Is6() {
			src = clientV6
		}
		h.inject(echoRequest(src, d))
		var e Echo
		select {
		case e = <-echoes:
		case <-time.After(5 * time.Second):
			t.Fatalf("echo to %s did not reach the handler", dst)
		}
		if err := h.st.ReplyEcho(e, e.Data); err != nil {
			t.Fatal(err)
		}
		h.st.RefuseEcho(e, ErrProhibited)
		h.st.RefuseEcho(e, errors.New("timed out")) // no answer
	}
	st := h.client.Stats()
	received := func() (uint64, uint64) {
		return st.ICMP.V4.PacketsReceived.EchoReply.Value() + st.ICMP.V6.PacketsReceived.EchoReply.Value(),
			st.ICMP.V4.PacketsReceived.DstUnreachable.Value() + st.ICMP.V6.PacketsReceived.DstUnreachable.Value()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		replies, unreach := received()
		if replies == 2 && unreach == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client got %d echo replies and %d unreachables, want 2 and 2", replies, unreach)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.st.Stats().EchoDropped; n != 0 {
		t.Fatalf("EchoDropped = %d, want 0", n)
	}
	if err := h.st.ReplyEcho(Echo{Src: clientV4, Dst: clientV4}, make([]byte, MaxEchoData+1)); !errors.Is(err, ErrEchoTooLarge) {
		t.Fatalf("oversized reply: %v", err)
	}
}

// FuzzParseEcho: whatever the OS sends, parsing never panics, and what it
// accepts can be answered with a valid reply.
func FuzzParseEcho(f *testing.F) {
	f.Add(echoRequest(clientV4, netip.MustParseAddr("100.64.0.9")))
	f.Add(echoRequest(clientV6, netip.MustParseAddr("fd00::9")))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		if !isEchoRequest(b) || !checksumsValid(b) {
			return
		}
		e, ok := parseEcho(b)
		if !ok {
			return
		}
		verifyEchoReply(t, echoReply(e, e.Data), e, e.Data)
	})
}
