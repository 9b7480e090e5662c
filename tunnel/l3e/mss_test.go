package l3e

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ztagent/ztagent/tunnel/l3e/l3etest"
)

// tcpChecksum verifies the TCP checksum of an IPv4 packet over its pseudo header.
func tcpChecksumOK(pkt []byte) bool {
	ihl := int(pkt[0]&0x0f) * 4
	l4 := pkt[ihl:]
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(pkt[12:20])
	sum += uint32(ProtoTCP) + uint32(len(l4))
	add(l4)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum) == 0xffff
}

func TestClampMSS(t *testing.T) {
	syn := l3etest.Packet(laptop, rdp, ProtoTCP, nil)
	l3etest.FixTCPChecksum(syn)
	if !tcpChecksumOK(syn) {
		t.Fatal("test packet's checksum is wrong")
	}
	if !ClampMSS(syn, 1380) {
		t.Fatal("SYN with MSS 1460 not clamped to MTU 1380")
	}
	if got := binary.BigEndian.Uint16(syn[20+22:]); got != 1340 {
		t.Fatalf("MSS %d, want 1340", got)
	}
	if !tcpChecksumOK(syn) {
		t.Fatal("checksum broken by the clamp")
	}
	if ClampMSS(syn, 1500) {
		t.Fatal("a smaller MSS was raised")
	}
	v6 := l3etest.Packet(netip.MustParseAddrPort("[fd00::5]:4000"), netip.MustParseAddrPort("[fd20::1]:22"), ProtoTCP, nil)
	if !ClampMSS(v6, 1380) || binary.BigEndian.Uint16(v6[40+22:]) != 1320 {
		t.Fatal("IPv6 SYN not clamped to 1320")
	}
	udp := l3etest.Packet(laptop, rdp, ProtoUDP, []byte("data"))
	if ClampMSS(udp, 1380) {
		t.Fatal("UDP changed")
	}
}

func FuzzClampMSS(f *testing.F) {
	f.Add(l3etest.Packet(laptop, rdp, ProtoTCP, nil))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		ClampMSS(pkt, 1380)
	})
}
