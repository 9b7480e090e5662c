package platform

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDarwinCommand(t *testing.T) {
	dev := linkSpec{Name: "utun4", Index: 17}
	for _, tc := range []struct {
		op   routerOp
		want string
	}{
		{routerOp{Kind: opAddrAdd, Link: dev, Addr: netip.MustParsePrefix("100.64.0.1/32")},
			"/sbin/ifconfig utun4 inet 100.64.0.1/32 100.64.0.1 alias"},
		{routerOp{Kind: opAddrAdd, Link: dev, Addr: netip.MustParsePrefix("fd7a::1/128")},
			"/sbin/ifconfig utun4 inet6 fd7a::1/128 alias"},
		{routerOp{Kind: opAddrDel, Link: dev, Addr: netip.MustParsePrefix("100.64.0.1/32")},
			"/sbin/ifconfig utun4 inet 100.64.0.1 -alias"},
		{routerOp{Kind: opAddrDel, Link: dev, Addr: netip.MustParsePrefix("fd7a::1/128")},
			"/sbin/ifconfig utun4 inet6 fd7a::1 -alias"},
		{routerOp{Kind: opLinkUp, Link: dev}, "/sbin/ifconfig utun4 up"},
		{routerOp{Kind: opLinkDown, Link: dev}, "/sbin/ifconfig utun4 down"},
		{routerOp{Kind: opRouteAdd, Link: dev, Route: routeSpec{Dst: netip.MustParsePrefix("10.1.0.0/16")}},
			"/sbin/route -q -n add -inet 10.1.0.0/16 -interface utun4"},
		{routerOp{Kind: opRouteDel, Link: dev, Route: routeSpec{Dst: netip.MustParsePrefix("fd7a::/48")}},
			"/sbin/route -q -n delete -inet6 fd7a::/48 -interface utun4"},
	} {
		argv, err := darwinCommand(tc.op)
		if err != nil {
			t.Fatalf("%s: %v", tc.op, err)
		}
		if got := strings.Join(argv, " "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.op, got, tc.want)
		}
	}
	if _, err := darwinCommand(routerOp{Kind: opMetricSet, Link: dev, Metric: 1}); err == nil {
		t.Error("a metric change has a macOS command")
	}
}

func TestDarwinAlreadyDone(t *testing.T) {
	add := routerOp{Kind: opRouteAdd}
	del := routerOp{Kind: opRouteDel}
	addrDel := routerOp{Kind: opAddrDel}
	for _, tc := range []struct {
		op     routerOp
		output string
		want   bool
	}{
		{add, "route: writing to routing socket: File exists\nadd net 10.1.0.0: gateway utun4: File exists\n", true},
		{add, "route: writing to routing socket: Network is unreachable\n", false},
		{del, "route: writing to routing socket: not in table\ndelete net 10.1.0.0: gateway utun4: not in table\n", true},
		{del, "route: writing to routing socket: File exists\n", false},
		{addrDel, "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n", true},
		{addrDel, "ifconfig: interface utun4 does not exist\n", false},
	} {
		if got := darwinAlreadyDone(tc.op, tc.output); got != tc.want {
			t.Errorf("%v %q: %v, want %v", tc.op.Kind, tc.output, got, tc.want)
		}
	}
}

func TestRIBPrefix(t *testing.T) {
	for _, tc := range []struct {
		dst  string
		mask []byte
		want string // "" when not a prefix
	}{
		{"10.1.0.0", []byte{255, 255, 0, 0}, "10.1.0.0/16"},
		{"10.1.2.3", []byte{255, 255, 0, 0}, "10.1.0.0/16"},
		{"0.0.0.0", []byte{0, 0, 0, 0}, "0.0.0.0/0"},
		{"192.168.1.7", nil, "192.168.1.7/32"},
		{"fd7a::", append([]byte{255, 255, 255, 255, 255, 255}, make([]byte, 10)...), "fd7a::/48"},
		{"10.0.0.0", []byte{255, 0, 255, 0}, ""},
		{"10.0.0.0", []byte{255, 255, 255, 255, 255}, ""},
	} {
		p, ok := ribPrefix(netip.MustParseAddr(tc.dst), tc.mask)
		got := ""
		if ok {
			got = p.String()
		}
		if got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.dst, tc.mask, got, tc.want)
		}
	}
}
