package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

func TestPrintStatusShowsL3E(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, ctlapi.Status{State: ctlapi.StateRunning, L3E: &ctlapi.L3EStatus{
		State: "up", Gateway: "10.10.0.1:443", TUN: "zt1", Address: netip.MustParsePrefix("10.77.0.2/24"), MTU: 1380,
		DNS: []netip.Addr{netip.MustParseAddr("10.20.0.12")}, Suffix: "corp.test", DDNS: "10.20.0.12:53 zone corp.test.",
		Routes:    []ctlapi.L3ERoute{{App: "rdp", Prefix: netip.MustParsePrefix("10.20.0.0/24"), TCP: "3389", ICMP: true}},
		PacketsIn: 5, PacketsOut: 7, Drops: map[string]uint64{"policy": 2, "send": 0}, Rekeys: 1,
	}})
	for _, want := range []string{
		"L3E:", "up to 10.10.0.1:443", "TUN zt1 10.77.0.2/24, MTU 1380",
		"corp.test via 10.20.0.12", "10.20.0.12:53 zone corp.test.",
		"L3E route", "10.20.0.0/24", "tcp 3389; icmp", "rdp",
		"5 in (0 bytes), 7 out (0 bytes); dropped: 2 policy\n", "1 re-keys",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	printStatus(&out, ctlapi.Status{State: ctlapi.StateRunning})
	if strings.Contains(out.String(), "L3E") {
		t.Errorf("L3E shown while off:\n%s", out.String())
	}
}
