package steering

import (
	"net/netip"
	"strings"
	"testing"
)

func TestStubRange6(t *testing.T) {
	app := App{ID: "a", Hosts: []string{"a.test"}, TCP: "443"}
	tests := []struct {
		name       string
		stub, six  string
		hosts      []string
		want       string // the snapshot's StubRange6, "" for none
		wantErr    string // a substring of the problem, "" for valid
		wantString string // the defaulted config's stub_range6
	}{
		{name: "default beside IPv4", want: "fd7a:7a61:6774::/104", wantString: "fd7a:7a61:6774::/104"},
		{name: "configured", six: "fd00:1:2::/112", want: "fd00:1:2::/112", wantString: "fd00:1:2::/112"},
		{name: "off", six: "off", wantString: "off"},
		{name: "IPv6 stub_range serves AAAA itself", stub: "fd00:9::/104"},
		{name: "IPv6 stub_range and stub_range6", stub: "fd00:9::/104", six: "fd00:1::/104", wantErr: "IPv6 already"},
		{name: "IPv4 prefix", six: "10.0.0.0/8", wantErr: "must be an IPv6 prefix"},
		{name: "too large", six: "fd00::/64", wantErr: "host bits"},
		{name: "not a prefix", six: "fd00::", wantErr: "client.stub_range6"},
		{name: "app inside it", six: "fd00:1::/104", hosts: []string{"fd00:1::5"}, wantErr: "overlaps the stub range fd00:1::/104"},
		{name: "app inside the default", hosts: []string{"fd7a:7a61:6774::/120"}, wantErr: "overlaps the stub range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := app
			if tc.hosts != nil {
				a.Hosts = tc.hosts
			}
			c := &Config{Apps: []App{a}, Client: ClientConfig{StubRange: tc.stub, StubRange6: tc.six}}
			s, err := Compile(c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Compile: %v; want a problem with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if r := s.StubRange6(); r.IsValid() {
				got = r.String()
			}
			if got != tc.want || s.Config().Client.StubRange6 != tc.wantString {
				t.Errorf("StubRange6 %q, config %q; want %q, %q", got, s.Config().Client.StubRange6, tc.want, tc.wantString)
			}
			if err := s.Config().Validate(); err != nil {
				t.Errorf("the defaulted config does not validate: %v", err)
			}
		})
	}
}

// TestIPv6StubFlows: a flow to an IPv6 stub is a stub flow (decided by the
// name behind it), and an IPv6 app address is steered by address.
func TestIPv6StubFlows(t *testing.T) {
	s, err := Compile(&Config{Apps: []App{
		{ID: "web", Hosts: []string{"web.test"}, TCP: "80"},
		{ID: "v6", Hosts: []string{"fd00:20::/64"}, TCP: "80"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	stub := netip.MustParseAddr("fd7a:7a61:6774::9")
	if !s.IsStub(stub) || s.IsStub(netip.MustParseAddr("fd00:20::10")) {
		t.Fatal("IsStub wrong")
	}
	if d := s.MatchFlow(Flow{Addr: stub, FQDN: "web.test", Proto: TCP, Port: 80}); d.Action != L7 || d.App.ID != "web" {
		t.Errorf("flow to an IPv6 stub of web.test: %+v", d)
	}
	if d := s.MatchFlow(Flow{Addr: stub, Proto: TCP, Port: 80}); d.Steered() || d.Reason != reasonStubUnknown {
		t.Errorf("flow to an unknown IPv6 stub: %+v; want not steered, %q", d, reasonStubUnknown)
	}
	if d := s.MatchFlow(Flow{Addr: netip.MustParseAddr("fd00:20::10"), Proto: TCP, Port: 80}); d.Action != L7 || d.App.ID != "v6" {
		t.Errorf("flow to an IPv6 app address: %+v", d)
	}
	found := false
	for _, p := range s.Prefixes() {
		found = found || p == netip.MustParsePrefix("fd00:20::/64")
	}
	if !found {
		t.Errorf("routes %v lack fd00:20::/64", s.Prefixes())
	}
}
