package steering

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodConfig = `{
  "apps": [
    {"id": "wiki", "name": "Wiki", "hosts": ["wiki.corp.test", "*.wiki.corp.test"], "tcp": "443", "publishers": ["pub-a"]},
    {"id": "ssh", "hosts": ["10.0.5.0/24", "fd00:5::/48"], "tcp": "22", "tunnel": "l7"},
    {"id": "voip", "hosts": ["10.9.0.10-10.9.0.20"], "udp": "5060-5061,10000-20000", "tcp": "5060"}
  ],
  "exceptions": {
    "domains": ["public.corp.test"],
    "addresses": ["10.0.5.128/25"],
    "pinned": [{"name": "Chrome", "os": "windows", "field": "process", "pattern": "(?i)^chrome\\.exe$", "action": "bypass"}]
  },
  "client": {"dns_ttl": "60s", "reauth_interval": "12h", "reauth_grace": "10m", "fail_mode": "close"}
}`

func TestParseConfigGood(t *testing.T) {
	c, err := ParseConfig([]byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Apps) != 3 || c.Client.DNSTTL.D() != time.Minute || c.Client.FailMode != FailClose {
		t.Fatalf("decoded %+v", c)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0].String(), "exception overrides") {
		// 10.0.5.128/25 is inside 10.0.5.0/24: not identical, so no shadow
		// warning is expected; only identical prefixes are reported.
		if len(w) != 0 {
			t.Fatalf("warnings = %v", w)
		}
	}
}

func TestParseConfigStrict(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unknown field", `{"apps": [], "aps": []}`, `unknown field "aps"`},
		{"unknown nested field", `{"apps": [{"id": "a", "hosts": ["a.test"], "tcp": "1", "port": 5}]}`, `unknown field "port"`},
		{"trailing data", `{"apps": []} {}`, "trailing data"},
		{"syntax", "{\"apps\": [\n  {,}]}", "line 2 column 4"},
		{"type", `{"apps": {}}`, "apps"},
		{"bad duration", `{"apps": [], "client": {"dns_ttl": 30}}`, "duration must be a string"},
		{"bad duration text", `{"apps": [], "client": {"dns_ttl": "30 seconds"}}`, "invalid duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.in))
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseConfig error = %v, want *ValidationError containing %q", err, tt.want)
			}
		})
	}
}

func TestParseConfigYAML(t *testing.T) {
	c, err := ParseConfigYAML([]byte("apps:\n  - id: wiki\n    hosts: [wiki.corp.test]\n    tcp: \"443\"\nclient:\n  dns_ttl: 45s\n"))
	if err != nil || c.Client.DNSTTL.D() != 45*time.Second {
		t.Fatalf("ParseConfigYAML = %+v, %v", c, err)
	}
	if _, err := ParseConfigYAML([]byte("apps: []\nbogus: 1\n")); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown YAML field: %v", err)
	}
}

// TestValidateReportsEverything checks that one pass reports every problem,
// each with its path and value, in document order.
func TestValidateReportsEverything(t *testing.T) {
	c := &Config{
		Apps: []App{
			{ID: "ok", Hosts: []string{"a.test"}, TCP: "443"},
			{ID: "ok", Hosts: []string{"10.0.0.0/33", "b.test", "100.64.1.1"}, TCP: "0", UDP: "x", Tunnel: "l4"},
			{ID: "bad id!", Hosts: nil},
			{ID: "l3", Hosts: []string{"c.test"}, TCP: "22", Tunnel: "l3e", PublisherDNS: true, Publishers: []string{" p"}},
			{ID: "udp-no-ports", Hosts: []string{"d.test"}, UDP: " "},
		},
		Exceptions: Exceptions{
			Domains:   []string{"10.0.0.1", "ok.test"},
			Addresses: []string{"a.test", "10.0.0.1-10.0.0.0"},
			Pinned: []PinnedApp{
				{Name: "", OS: "beos", Field: "pid", Pattern: "a{,3}", Action: "drop"},
				{Name: "x", OS: "linux", Field: "path", Pattern: ""},
			},
		},
		Client: ClientConfig{StubRange: "100.64.0.0/31", DNSTTL: Duration(time.Millisecond), UDPIdleTimeout: Duration(5 * time.Second), FailMode: "maybe",
			OnPremDetection: &OnPremDetection{DNS: &OnPremDNS{Name: "*.corp.test", Address: "x"}}},
	}
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	want := []string{
		`client.stub_range: "100.64.0.0/31": stub range must have between 2 and 24 host bits`,
		`client.dns_ttl: "1ms": must be between 1s and 24h0m0s (or unset for the default)`,
		`client.udp_idle_timeout: "5s": must be between 10s and 1h0m0s (or unset for the default)`,
		`client.fail_mode: "maybe": must be "open", "close" or "local"`,
		`client.onprem_detection.dns.name: "*.corp.test": must be one host name, not a wildcard`,
		`client.onprem_detection.dns.address: "x": must be an IPv4 or IPv6 address`,
		`apps[1].id: "ok": duplicate of apps[0].id`,
		`apps[1].hosts[0]: "10.0.0.0/33": prefix length out of range`,
		`apps[1].hosts[2]: "100.64.1.1": overlaps the stub range 100.64.0.0/10`,
		`apps[1].tcp: "0": port 0 is not a valid port`,
		`apps[1].udp: "x": invalid port "x"`,
		`apps[1].tunnel: "l4": must be "l7" or "l3e"`,
		`apps[2].id: "bad id!": must be 1-64 characters`,
		`apps[2].hosts: at least one host is required`,
		`apps[2]: "bad id!": app has neither tcp nor udp ports`,
		`apps[3].tunnel: "l3e": the L3E tunnel is not supported yet`,
		`apps[3].publisher_dns: "true": publisher DNS needs the l7 tunnel`,
		`apps[3].publishers[0]: " p": must be non-empty without surrounding spaces`,
		`apps[4].udp: " ": empty port set: leave udp out for an app that does not use it`,
		`apps[4]: "udp-no-ports": app has neither tcp nor udp ports`,
		`exceptions.domains[0]: "10.0.0.1": an address is not a domain`,
		`exceptions.addresses[0]: "a.test": a name is not an address`,
		`exceptions.addresses[1]: "10.0.0.1-10.0.0.0": range end is before its start`,
		`exceptions.pinned[0].name: required`,
		`exceptions.pinned[0].os: "beos": must be one of windows, darwin, linux, android, ios`,
		`exceptions.pinned[0].field: "pid": must be "process", "path" or "appid"`,
		`exceptions.pinned[0].action: "drop": must be "bypass" or "block"`,
		`exceptions.pinned[0].pattern: "a{,3}": invalid pattern at offset 1: {,n} quantifier`,
		`exceptions.pinned[1].pattern: required`,
	}
	if len(ve.Problems) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ve.Problems), len(want), err)
	}
	for i, w := range want {
		if i >= len(ve.Problems) {
			break
		}
		if got := ve.Problems[i].String(); !strings.HasPrefix(got, w) {
			t.Errorf("problem %d = %s\n              want %s…", i, got, w)
		}
	}
	if !strings.HasPrefix(err.Error(), "invalid config: 29 problems:\n  client.stub_range") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestWarnings(t *testing.T) {
	c := &Config{
		Apps: []App{
			{ID: "a", Hosts: []string{"wiki.test", "*.corp.test", "10.0.0.0/24", "wiki.test"}, TCP: "443"},
			{ID: "b", Hosts: []string{"WIKI.test.", "*.corp.test", "10.0.0.0-10.0.0.255"}, TCP: "80,443"},
			{ID: "c", Hosts: []string{"wiki.test", "10.0.0.0/24"}, TCP: "22"},
		},
		Exceptions: Exceptions{Domains: []string{"*.corp.test", "*.Corp.test"}, Addresses: []string{"10.0.0.0/24"}},
		Client:     ClientConfig{ReauthGrace: Duration(time.Minute)},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`client.reauth_grace: "1m0s": has no effect while reauth_interval is unset`,
		`apps[0].hosts[3]: "wiki.test": duplicate of apps[0].hosts[0]`,
		`apps[1].hosts[0]: "WIKI.test.": tie with apps[0].hosts[0] "wiki.test" on overlapping ports; apps[0] (a) wins because it comes first`,
		`apps[1].hosts[1]: "*.corp.test": tie with apps[0].hosts[1] "*.corp.test" on overlapping ports; apps[0] (a) wins`,
		`apps[1].hosts[2]: "10.0.0.0-10.0.0.255": tie with apps[0].hosts[2] "10.0.0.0/24"`,
		`exceptions.domains[0]: "*.corp.test": exception overrides apps[0].hosts[1] "*.corp.test" (a)`,
		`exceptions.domains[1]: "*.Corp.test": exception overrides apps[0].hosts[1]`,
		`exceptions.domains[1]: "*.Corp.test": duplicate of exceptions.domains[0]`,
		`exceptions.addresses[0]: "10.0.0.0/24": exception overrides apps[0].hosts[2]`,
	}
	got := c.Warnings()
	if len(got) != len(want) {
		t.Errorf("got %d warnings, want %d: %v", len(got), len(want), got)
	}
	for i := range min(len(got), len(want)) {
		if !strings.HasPrefix(got[i].String(), want[i]) {
			t.Errorf("warning %d = %s\n              want %s…", i, got[i], want[i])
		}
	}
}

func TestCompileDefaults(t *testing.T) {
	c := &Config{Apps: []App{{ID: "a", Hosts: []string{"a.test"}, TCP: "443"}},
		Exceptions: Exceptions{Pinned: []PinnedApp{{Name: "x", OS: "linux", Field: "process", Pattern: "^x$"}}}}
	s, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Config()
	if got.Client.StubRange != "100.64.0.0/10" || got.Client.DNSTTL.D() != 30*time.Second ||
		got.Client.ConfigPoll.D() != 5*time.Minute || got.Client.ProbeInterval != 0 ||
		got.Client.FailMode != FailOpen || got.Apps[0].Tunnel != TunnelL7 || got.Exceptions.Pinned[0].Action != PinnedBypass {
		t.Fatalf("defaults not applied: %+v", got)
	}
	if s.StubRange().String() != "100.64.0.0/10" {
		t.Fatalf("StubRange = %s", s.StubRange())
	}
	// Defaults never set what validation refuses (notSupportedYet).
	if err := got.Validate(); err != nil {
		t.Fatalf("the defaulted config does not validate: %v", err)
	}
	// The snapshot owns its copy: changing the input changes nothing.
	c.Apps[0].Hosts[0] = "b.test"
	if s.MatchName("a.test").Action != L7 || s.App("a").Hosts[0] != "a.test" {
		t.Fatal("snapshot shares memory with its input")
	}
	if c.Client.StubRange != "" || c.Apps[0].Tunnel != "" {
		t.Fatal("Compile modified its input")
	}
	if _, err := Compile(&Config{Apps: []App{{ID: "a"}}}); err == nil {
		t.Fatal("Compile accepted an invalid config")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte(`{"apps":[]}`))
	f.Add([]byte(`{"apps":[{"id":"a","hosts":["10.0.0.0/8","*.a.test","a.test"],"tcp":"*","udp":"53"}],"exceptions":{"domains":["*.a.test"]}}`))
	f.Add([]byte(`{"apps":[{"id":"a","hosts":["10.0.0.0/33"],"tcp":"0"}]}`))
	f.Add([]byte(`{"apps":[{"id":"a","hosts":["fd00::1-fd00::9"],"tcp":"1-65535"}],"client":{"stub_range":"fd7a::/104"}}`))
	f.Add([]byte(`{"apps":[],"exceptions":{"pinned":[{"name":"n","os":"ios","field":"appid","pattern":"^(?!com\\.a).*"}]}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error %v is not a non-empty *ValidationError", err)
			}
			return
		}
		s, err := Compile(c)
		if err != nil {
			t.Fatalf("valid config does not compile: %v", err)
		}
		for _, a := range c.Apps {
			for _, h := range a.Hosts {
				s.MatchName(h)
			}
		}
		s.Prefixes()
	})
}

// TestNotSupportedYet: every setting the agent cannot honour yet is refused
// with its path, its value and "not supported yet"; each row of
// notSupportedYet is covered, and what is done stays accepted.
func TestNotSupportedYet(t *testing.T) {
	app := func(id, tunnel string) App {
		return App{ID: id, Hosts: []string{id + ".corp.test"}, TCP: "5060", UDP: "5060-5061", Tunnel: tunnel}
	}
	tests := []struct {
		name string
		c    Config
		want string // "" means accepted
	}{
		{"l3e app", Config{Apps: []App{app("a", "l7"), app("b", "l3e")}}, `apps[1].tunnel: "l3e": the L3E tunnel is not supported yet`},
		{"prelogon", Config{Client: ClientConfig{PreLogon: true}},
			`client.prelogon: "true": pre-logon set by the tenant (the prelogonuser= install parameter does it) is not supported yet`},
		{"l7 and udp ports", Config{Apps: []App{app("a", ""), app("b", "l7")}}, ""},
		{"probe interval", Config{Client: ClientConfig{ProbeInterval: Duration(time.Minute)}}, ""},
		{"dtls", Config{Client: ClientConfig{DTLS: true}}, ""},
	}
	if rows := len(tests) - 3; rows != len(notSupportedYet) {
		t.Fatalf("%d cases for %d rows of notSupportedYet", rows, len(notSupportedYet))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != "invalid config: "+tt.want {
				t.Fatalf("Validate = %v\nwant %s", err, tt.want)
			}
			var ve *ValidationError
			if _, cerr := Compile(&tt.c); !errors.As(cerr, &ve) {
				t.Fatalf("Compile = %v, want the same refusal", cerr)
			}
		})
	}
}
