package steering

import (
	"net/netip"
	"testing"
)

func TestMatchEcho(t *testing.T) {
	s := mustCompile(t, matchConfig)
	stub := netip.MustParseAddr("100.64.0.9")
	tests := []struct {
		addr, fqdn, app string
		action          Action
	}{
		{"100.64.0.9", "wiki.corp.test", "wiki", L7},   // stub, by name
		{"100.64.0.9", "x.dev.corp.test", "dev", L7},   // longest wildcard
		{"100.64.0.9", "public.corp.test", "", Direct}, // name exception
		{"100.64.0.9", "example.com", "", Direct},      // no app for the name
		{"100.64.0.9", "", "", Direct},                 // unknown stub
		{"10.1.2.15", "", "voip", L7},                  // UDP-only app: an echo has no port
		{"10.1.3.5", "", "", Direct},                   // address exception
		{"10.9.9.9", "", "dev", L7},                    // TCP app by prefix
		{"fd00:9::5", "", "v6", L7},                    // most specific v6 host
		{"192.0.2.1", "", "", Direct},                  // no app
		{"10.1.3.5", "db.corp.test", "", Direct},       // the address exception still wins
		{"10.20.0.11", "db.corp.test", "db", L7},       // publisher-DNS address, by name
		{"::ffff:10.9.9.9", "", "dev", L7},             // mapped address read as IPv4
	}
	for _, tc := range tests {
		d := s.MatchEcho(netip.MustParseAddr(tc.addr), tc.fqdn)
		got := ""
		if d.App != nil {
			got = d.App.ID
		}
		if d.Action != tc.action || got != tc.app || d.Reason == "" {
			t.Errorf("MatchEcho(%s, %q) = %v app %q (%s), want %v app %q", tc.addr, tc.fqdn, d.Action, got, d.Reason, tc.action, tc.app)
		}
	}
	if d := s.MatchEcho(stub, ""); d.Reason != reasonStubUnknown {
		t.Errorf("unknown stub: reason %q", d.Reason)
	}
}
