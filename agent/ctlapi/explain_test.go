package ctlapi

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/steering"
)

type stubNames map[netip.Addr]string

func (s stubNames) Lookup(a netip.Addr) (string, bool) { n, ok := s[a]; return n, ok }

func TestExplain(t *testing.T) {
	snap, err := steering.Compile(&steering.Config{Apps: []steering.App{
		{ID: "web", Hosts: []string{"web.corp.test"}, TCP: "80"},
		{ID: "voice", Hosts: []string{"voice.corp.test"}, TCP: "5061", UDP: "5060"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	stubs := stubNames{netip.MustParseAddr("100.64.0.9"): "web.corp.test"}
	cases := []struct {
		name                     string
		req                      MatchRequest
		action, steering, reason string
		explains                 string
	}{
		{"L7 flow", MatchRequest{Host: "web.corp.test", Port: 80, Proto: "tcp"}, "l7", "", "", "L7 tunnel"},
		{"stub maps back", MatchRequest{Host: "100.64.0.9", Port: 80, Proto: "tcp"}, "l7", "", "", "web"},
		{"port outside", MatchRequest{Host: "web.corp.test", Port: 81, Proto: "tcp"}, "direct", "", "", "direct"},
		{"UDP over L7", MatchRequest{Host: "voice.corp.test", Port: 5060, Proto: "udp"}, "l7", "", "", "L7 tunnel"},
		{"UDP port outside", MatchRequest{Host: "voice.corp.test", Port: 5061, Proto: "udp"}, "direct", "", "", "direct"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Explain(snap, stubs, tc.req)
			if got.Action != tc.action || got.Steering != tc.steering || (tc.reason != "" && got.Reason != tc.reason) {
				t.Fatalf("Explain = %+v; want action %s, steering %q, reason %q", got, tc.action, tc.steering, tc.reason)
			}
			if !strings.Contains(got.Explain, tc.explains) {
				t.Fatalf("explanation %q lacks %q", got.Explain, tc.explains)
			}
		})
	}
}
