package platform

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

// ipPacket crafts an IPv4 or IPv6 packet of proto from src to dst with a
// TCP/UDP header's ports and a few bytes of payload; opts adds IPv4 options
// (ihl > 5).
func ipPacket(proto uint8, src, dst netip.AddrPort, opts int) []byte {
	var p []byte
	if src.Addr().Is4() {
		ihl := 20 + opts
		p = make([]byte, ihl+20)
		p[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		p[8], p[9] = 64, proto
		copy(p[12:], src.Addr().AsSlice())
		copy(p[16:], dst.Addr().AsSlice())
		binary.BigEndian.PutUint16(p[ihl:], src.Port())
		binary.BigEndian.PutUint16(p[ihl+2:], dst.Port())
		return p
	}
	p = make([]byte, 40+20)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], 20)
	p[6], p[7] = proto, 64
	copy(p[8:], src.Addr().AsSlice())
	copy(p[24:], dst.Addr().AsSlice())
	binary.BigEndian.PutUint16(p[40:], src.Port())
	binary.BigEndian.PutUint16(p[42:], dst.Port())
	return p
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// TestOwnTrafficFilter runs the capture filter in x/net/bpf's VM against
// crafted packets: those to or from an endpoint pass, both ways, on raw and
// Ethernet links; other ports, addresses, protocols, later fragments and
// non-IP frames do not.
func TestOwnTrafficFilter(t *testing.T) {
	eps := []Endpoint{
		{ProtoTCP, ap("192.0.2.10:443")},
		{ProtoUDP, ap("192.0.2.20:443")},
		{ProtoUDP, ap("198.51.100.53:53")},
		{ProtoTCP, ap("[2001:db8::10]:443")},
	}
	me4, me6 := ap("10.0.0.2:40000"), ap("[2001:db8:1::2]:40000")
	later := ipPacket(ProtoTCP, me4, ap("192.0.2.10:443"), 0)
	binary.BigEndian.PutUint16(later[6:], 0x00b9) // fragment offset 185
	tests := []struct {
		name string
		p    []byte
		want bool
	}{
		{"v4 tcp to the PoP", ipPacket(ProtoTCP, me4, ap("192.0.2.10:443"), 0), true},
		{"v4 tcp from the PoP", ipPacket(ProtoTCP, ap("192.0.2.10:443"), me4, 0), true},
		{"v4 tcp from the PoP, IP options", ipPacket(ProtoTCP, ap("192.0.2.10:443"), me4, 8), true},
		{"v4 udp to the gateway", ipPacket(ProtoUDP, me4, ap("192.0.2.20:443"), 0), true},
		{"v4 udp from DNS", ipPacket(ProtoUDP, ap("198.51.100.53:53"), me4, 0), true},
		{"v4 udp to the PoP's TCP port", ipPacket(ProtoUDP, me4, ap("192.0.2.10:443"), 0), false},
		{"v4 tcp to the PoP, other port", ipPacket(ProtoTCP, me4, ap("192.0.2.10:80"), 0), false},
		{"v4 tcp to another host", ipPacket(ProtoTCP, me4, ap("192.0.2.11:443"), 0), false},
		{"v4 tcp, port matches the wrong side", ipPacket(ProtoTCP, ap("192.0.2.10:40000"), ap("10.0.0.2:443"), 0), false},
		{"v4 later fragment", later, false},
		{"v4 icmp", ipPacket(1, me4, ap("192.0.2.10:443"), 0), false},
		{"v6 tcp to the PoP", ipPacket(ProtoTCP, me6, ap("[2001:db8::10]:443"), 0), true},
		{"v6 tcp from the PoP", ipPacket(ProtoTCP, ap("[2001:db8::10]:443"), me6, 0), true},
		{"v6 tcp, address one bit off", ipPacket(ProtoTCP, me6, ap("[2001:db8::11]:443"), 0), false},
		{"v6 udp to the PoP", ipPacket(ProtoUDP, me6, ap("[2001:db8::10]:443"), 0), false},
		{"v6 hop-by-hop first", ipPacket(0, me6, ap("[2001:db8::10]:443"), 0), false},
		{"not IP", []byte{0x00, 0x01, 0x08, 0x00}, false},
		{"empty", nil, false},
	}
	links := []struct {
		name string
		lh   linkHeader
		wrap func(p []byte) []byte
	}{
		{"raw", linkHeader{}, func(p []byte) []byte { return p }},
		{"ethernet", linkHeader{Offset: 14, EtherType: true}, func(p []byte) []byte {
			f := make([]byte, 14, 14+len(p))
			typ := uint16(0x0800)
			if len(p) > 0 && p[0]>>4 == 6 {
				typ = 0x86dd
			} else if len(p) > 0 && p[0]>>4 != 4 {
				typ = 0x0806
			}
			binary.BigEndian.PutUint16(f[12:], typ)
			return append(f, p...)
		}},
		{"null", linkHeader{Offset: 4}, func(p []byte) []byte { return append([]byte{2, 0, 0, 0}, p...) }},
	}
	for _, l := range links {
		vm := filterVM(t, eps, l.lh)
		for _, tt := range tests {
			t.Run(l.name+"/"+tt.name, func(t *testing.T) {
				n, err := vm.Run(l.wrap(tt.p))
				if err != nil {
					t.Fatal(err)
				}
				if got := n > 0; got != tt.want {
					t.Fatalf("passed %v (%d), want %v", got, n, tt.want)
				}
			})
		}
	}
}

func filterVM(t *testing.T, eps []Endpoint, lh linkHeader) *bpf.VM {
	t.Helper()
	raw, err := ownTrafficFilter(eps, lh)
	if err != nil {
		t.Fatal(err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the program does not disassemble")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// TestOwnTrafficFilterFull: the filter for the largest set, of IPv6
// endpoints (the longest blocks), fits the kernels' 4096 instructions, and
// its long jumps land: the first and the last endpoint pass, none other.
func TestOwnTrafficFilterFull(t *testing.T) {
	var eps []Endpoint
	for i := range maxOwnEndpoints {
		eps = append(eps, Endpoint{ProtoTCP, ap(fmt.Sprintf("[2001:db8::%x]:443", i+1))})
	}
	eps = append(eps[:maxOwnEndpoints-1], Endpoint{ProtoUDP, ap("192.0.2.1:53")})
	vm := filterVM(t, eps, linkHeader{})
	me6 := ap("[2001:db8:1::2]:40000")
	for _, c := range []struct {
		p    []byte
		want bool
	}{
		{ipPacket(ProtoTCP, me6, ap("[2001:db8::1]:443"), 0), true},
		{ipPacket(ProtoTCP, ap("[2001:db8::7f]:443"), me6, 0), true},
		{ipPacket(ProtoTCP, me6, ap("[2001:db8::80]:443"), 0), false},
		{ipPacket(ProtoUDP, ap("192.0.2.1:53"), ap("10.0.0.2:5353"), 0), true},
		{ipPacket(ProtoUDP, ap("192.0.2.2:53"), ap("10.0.0.2:5353"), 0), false},
	} {
		n, err := vm.Run(c.p)
		if err != nil || (n > 0) != c.want {
			t.Errorf("%x: passed %d (%v), want %v", c.p[:44], n, err, c.want)
		}
	}
}

// TestOwnEndpoints: the set adds dials of TCP and UDP, unmaps IPv4 in IPv6,
// keeps the newest maxOwnEndpoints, and tells its watcher of each change.
func TestOwnEndpoints(t *testing.T) {
	var s endpointSet
	s.m = make(map[Endpoint]time.Time)
	var seen [][]Endpoint
	s.watch = func(eps []Endpoint) { seen = append(seen, eps) }
	t0 := time.Unix(1e9, 0)
	s.add(Endpoint{ProtoTCP, ap("[::ffff:192.0.2.1]:443")}, t0)
	s.add(Endpoint{ProtoTCP, ap("192.0.2.1:443")}, t0.Add(time.Second)) // the same
	if len(seen) != 1 || seen[0][0].Addr != ap("192.0.2.1:443") {
		t.Fatalf("watcher saw %v, want one change with 192.0.2.1:443", seen)
	}
	for i := range maxOwnEndpoints {
		s.add(Endpoint{ProtoUDP, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 53)}, t0.Add(time.Duration(i+2)*time.Second))
	}
	eps := seen[len(seen)-1]
	if len(eps) != maxOwnEndpoints || eps[0].Addr == ap("192.0.2.1:443") {
		t.Fatalf("%d endpoints, first %v: want %d without the oldest", len(eps), eps[0], maxOwnEndpoints)
	}
}
