package steering

import (
	"net/netip"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	c := &Config{
		Apps: []App{
			{ID: "wiki", Name: "Wiki", Hosts: []string{"*.corp.test"}, TCP: "443", Publishers: []string{"pub-a", "pub-b"}, PublisherDNS: true},
			{ID: "ssh", Hosts: []string{"10.0.0.0/8"}, TCP: "22"},
		},
		Exceptions: Exceptions{
			Domains: []string{"public.corp.test"},
			Pinned:  []PinnedApp{{Name: "bank", OS: "darwin", Field: "appid", Pattern: `^com\.bank`, Action: "block"}},
		},
	}
	s := mustCompile(t, c)
	tests := []struct {
		name string
		d    Decision
		want []string
	}{
		{"l7 name", s.MatchName("x.corp.test"), []string{
			`Steered through the L7 tunnel`, `to app "Wiki" (id wiki; tcp 443; udp none)`,
			`decided by apps[0].hosts[0] "*.corp.test"`, "longest matching wildcard",
			"through a publisher", "Publishers: pub-a, pub-b."}},
		{"l7 addr", s.MatchFlow(Flow{Addr: netip.MustParseAddr("10.1.1.1"), Proto: TCP, Port: 22}), []string{
			"Steered through the L7 tunnel", "to app ssh (tcp 22; udp none)", `apps[1].hosts[0] "10.0.0.0/8"`}},
		// No config compiles to L3E until the tunnel exists (see notSupportedYet).
		{"l3e", Decision{Action: L3E, App: &c.Apps[1], Rule: `apps[1].hosts[0] "10.0.0.0/8"`}, []string{
			"Steered through the L3E tunnel", "to app ssh (tcp 22; udp none)"}},
		{"exception", s.MatchName("public.corp.test"), []string{
			"Goes direct (not steered), decided by exceptions.domains[0]", "exceptions are decided before apps"}},
		{"nothing", s.MatchName("example.com"), []string{"Goes direct (not steered): no exception or app host matches the name."}},
		{"block", s.MatchFlow(Flow{Addr: netip.MustParseAddr("10.1.1.1"), Proto: TCP, Port: 22, OS: "darwin", AppID: "com.bank.x"}), []string{
			"Blocked instead of to app ssh", `decided by exceptions.pinned[0] "^com\\.bank"`, "action block"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Explain(tt.d)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain = %q\nmissing %q", got, w)
				}
			}
			if strings.Contains(got, "\n") {
				t.Errorf("Explain is not one paragraph: %q", got)
			}
		})
	}
}

func TestProtocolAction(t *testing.T) {
	for _, s := range []string{"tcp", "UDP"} {
		p, err := ParseProtocol(s)
		if err != nil || p.String() != strings.ToLower(s) {
			t.Errorf("ParseProtocol(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseProtocol("icmp"); err == nil {
		t.Error("icmp accepted")
	}
	if TCP != 6 || UDP != 17 || Protocol(1).String() != "proto(1)" {
		t.Error("protocol numbers")
	}
	want := map[Action]string{Direct: "direct", L7: "l7", L3E: "l3e", Block: "block", 9: "action(9)"}
	for a, s := range want {
		if a.String() != s {
			t.Errorf("%d.String() = %q", a, a.String())
		}
	}
}
