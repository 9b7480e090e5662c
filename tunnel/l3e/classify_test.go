package l3e

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ztagent/ztagent/tunnel/l3e/l3etest"
)

var (
	laptop = netip.MustParseAddrPort("10.77.0.5:50000")
	rdp    = netip.MustParseAddrPort("10.20.0.20:3389")
)

func TestClassify(t *testing.T) {
	v6 := l3etest.Packet(netip.MustParseAddrPort("[fd00::5]:4000"), netip.MustParseAddrPort("[fd20::1]:53"), ProtoUDP, []byte("q"))
	// The same with a hop-by-hop options header in front of UDP.
	hbh := append([]byte{}, v6[:40]...)
	hbh[6] = 0
	binary.BigEndian.PutUint16(hbh[4:], uint16(len(v6)-40+8))
	hbh = append(append(hbh, ProtoUDP, 0, 1, 4, 0, 0, 0, 0), v6[40:]...)
	frag := l3etest.Packet(laptop, rdp, ProtoTCP, nil)
	frag[7] = 10 // fragment offset 80
	tests := []struct {
		name string
		pkt  []byte
		want Flow
		err  bool
	}{
		{"v4 tcp", l3etest.Packet(laptop, rdp, ProtoTCP, nil), Flow{Src: laptop.Addr(), Dst: rdp.Addr(), Proto: ProtoTCP, SrcPort: 50000, DstPort: 3389}, false},
		{"v4 icmp", l3etest.Packet(laptop, rdp, ProtoICMP, nil), Flow{Src: laptop.Addr(), Dst: rdp.Addr(), Proto: ProtoICMP}, false},
		{"v4 later fragment", frag, Flow{Src: laptop.Addr(), Dst: rdp.Addr(), Proto: ProtoTCP, Fragment: true}, false},
		{"v6 udp", v6, Flow{Src: netip.MustParseAddr("fd00::5"), Dst: netip.MustParseAddr("fd20::1"), Proto: ProtoUDP, SrcPort: 4000, DstPort: 53}, false},
		{"v6 hop-by-hop", hbh, Flow{Src: netip.MustParseAddr("fd00::5"), Dst: netip.MustParseAddr("fd20::1"), Proto: ProtoUDP, SrcPort: 4000, DstPort: 53}, false},
		{"v4 truncated", l3etest.Packet(laptop, rdp, ProtoTCP, nil)[:22], Flow{}, true},
		{"v6 short", v6[:39], Flow{}, true},
		{"empty", nil, Flow{}, true},
		{"not ip", []byte{0x20, 1, 2}, Flow{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Classify(tc.pkt)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	f, err := NewFilter(goodTemplate().Routes)
	if err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddrPort("10.77.0.9:40000")
	tests := []struct {
		name     string
		src, dst netip.AddrPort
		proto    uint8
		out, in  bool // as sent by the first address, as received by the second
	}{
		{"device to rdp", laptop, rdp, ProtoTCP, true, false},
		{"helpdesk to device rdp", netip.MustParseAddrPort("10.20.0.20:51000"), netip.AddrPortFrom(laptop.Addr(), 3389), ProtoTCP, false, true},
		{"disallowed port", laptop, netip.MustParseAddrPort("10.20.0.20:22"), ProtoTCP, false, false},
		{"icmp to helpdesk", laptop, rdp, ProtoICMP, true, false},
		{"udp to voip peer", laptop, other, ProtoUDP, true, true},
		{"outside every route", laptop, netip.MustParseAddrPort("192.0.2.1:3389"), ProtoTCP, false, false},
		{"gre", laptop, rdp, 47, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fl, err := Classify(l3etest.Packet(tc.src, tc.dst, tc.proto, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Outbound(&fl); got != tc.out {
				t.Errorf("outbound %v, want %v", got, tc.out)
			}
			if got := f.Inbound(&fl); got != tc.in {
				t.Errorf("inbound %v, want %v", got, tc.in)
			}
		})
	}
}

func BenchmarkClassifyFilter(b *testing.B) {
	f, _ := NewFilter(goodTemplate().Routes)
	pkt := l3etest.Packet(laptop, rdp, ProtoTCP, make([]byte, 1300))
	b.ReportAllocs()
	for b.Loop() {
		fl, err := Classify(pkt)
		if err != nil || !f.Outbound(&fl) {
			b.Fatal("refused")
		}
	}
}

func FuzzClassify(f *testing.F) {
	f.Add(l3etest.Packet(laptop, rdp, ProtoTCP, nil))
	f.Add(l3etest.Packet(netip.MustParseAddrPort("[fd00::5]:4000"), netip.MustParseAddrPort("[fd20::1]:53"), ProtoUDP, []byte("q")))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 44, 64})
	filter, _ := NewFilter(goodTemplate().Routes)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		fl, err := Classify(pkt)
		if err != nil {
			return
		}
		if !fl.Src.IsValid() || !fl.Dst.IsValid() {
			t.Fatalf("accepted packet without addresses: %+v", fl)
		}
		if fl.Proto != ProtoTCP && fl.Proto != ProtoUDP && (fl.SrcPort != 0 || fl.DstPort != 0) {
			t.Fatalf("ports for protocol %d", fl.Proto)
		}
		// The filter is total: it answers for every classified packet.
		_ = filter.Outbound(&fl)
		_ = filter.Inbound(&fl)
	})
}
