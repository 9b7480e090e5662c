package steering

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestOnPremValidation(t *testing.T) {
	const fp = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
	tests := []struct {
		name string
		o    OnPremDetection
		want []string // problems, in order; none means accepted
	}{
		{"dns", OnPremDetection{DNS: &OnPremDNS{Name: "onprem.corp.test", Address: "10.1.2.3"}}, nil},
		{"dns v6", OnPremDetection{DNS: &OnPremDNS{Name: "onprem.corp.test", Address: "fd00::1"}, Interval: Duration(time.Minute)}, nil},
		{"beacon", OnPremDetection{Beacon: &OnPremBeacon{URL: "https://beacon.corp.test:8443/b", SHA256: fp}}, nil},
		{"beacon plain hex", OnPremDetection{Beacon: &OnPremBeacon{URL: "https://10.1.2.3/", SHA256: strings.ReplaceAll(strings.ToLower(fp), ":", "")}}, nil},
		{"neither", OnPremDetection{}, []string{`client.onprem_detection: one of dns or beacon is required`}},
		{"both", OnPremDetection{DNS: &OnPremDNS{Name: "a.test", Address: "10.0.0.1"}, Beacon: &OnPremBeacon{URL: "https://b.test/", SHA256: fp}},
			[]string{`client.onprem_detection: dns or beacon, not both`}},
		{"bad dns", OnPremDetection{DNS: &OnPremDNS{Name: "10.0.0.0/8", Address: "corp"}}, []string{
			`client.onprem_detection.dns.name: "10.0.0.0/8": must be one host name, not a CIDR`,
			`client.onprem_detection.dns.address: "corp": must be an IPv4 or IPv6 address`}},
		{"empty dns", OnPremDetection{DNS: &OnPremDNS{}}, []string{
			`client.onprem_detection.dns.name: `,
			`client.onprem_detection.dns.address: must be an IPv4 or IPv6 address`}},
		{"http beacon", OnPremDetection{Beacon: &OnPremBeacon{URL: "http://b.test/", SHA256: fp[:10]}}, []string{
			`client.onprem_detection.beacon.url: "http://b.test/": the beacon must be an https URL`,
			`client.onprem_detection.beacon.sha256: "AB:CD:EF:0": not a hex SHA-256 fingerprint`}},
		{"short fingerprint", OnPremDetection{Beacon: &OnPremBeacon{URL: "https://u:p@b.test/", SHA256: "abcd"}}, []string{
			`client.onprem_detection.beacon.url: "https://u:p@b.test/": the URL must not carry user information`,
			`client.onprem_detection.beacon.sha256: "abcd": a SHA-256 fingerprint has 32 bytes`}},
		{"interval", OnPremDetection{DNS: &OnPremDNS{Name: "a.test", Address: "10.0.0.1"}, Interval: Duration(time.Second)}, []string{
			`client.onprem_detection.interval: "1s": must be between 5s and 1h0m0s (or unset for the default)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Client: ClientConfig{OnPremDetection: &tt.o}}
			ck, err := check(&c)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if len(ck.problems) != len(tt.want) {
				t.Fatalf("problems = %v, want %d", ck.problems, len(tt.want))
			}
			for i, w := range tt.want {
				if got := ck.problems[i].String(); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d = %s, want %s…", i, got, w)
				}
			}
		})
	}
}

func TestOnPremDefaults(t *testing.T) {
	in := &Config{Client: ClientConfig{OnPremDetection: &OnPremDetection{DNS: &OnPremDNS{Name: "a.test", Address: "10.0.0.1"}}}}
	snap, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Config().Client.OnPremDetection.Interval.D(); got != DefaultOnPremInterval {
		t.Errorf("interval = %v, want %v", got, DefaultOnPremInterval)
	}
	if in.Client.OnPremDetection.Interval != 0 {
		t.Error("Compile changed its input")
	}
}

func TestParseConfigOnPremYAML(t *testing.T) {
	c, err := ParseConfigYAML([]byte("apps: []\nclient:\n  onprem_detection:\n    beacon:\n      url: https://b.test/\n      sha256: " +
		strings.Repeat("ab", 32) + "\n    interval: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Client.OnPremDetection.Beacon; b == nil || b.URL != "https://b.test/" {
		t.Fatalf("beacon = %+v", b)
	}
	if _, err := ParseConfigYAML([]byte("apps: []\nclient:\n  onprem_detection: onprem.corp.test\n")); err == nil {
		t.Fatal("the old string form was accepted")
	}
}

func TestCaptiveCheckValidation(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"off", ""},
		{"http://check.public.test/generate_204", ""},
		{"https://check.public.test/generate_204", `client.captive_check: "https://check.public.test/generate_204": must be an http URL`},
		{"http:///x", `client.captive_check: "http:///x": the URL has no host`},
		{"http://u@h.test/", `client.captive_check: "http://u@h.test/": the URL must not carry user information`},
		{"%zz", `client.captive_check: "%zz": not a URL`},
	}
	for _, tt := range tests {
		err := (&Config{Client: ClientConfig{CaptiveCheck: tt.in}}).Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.in, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), "invalid config: "+tt.want)):
			t.Errorf("%q: %v, want %s", tt.in, err, tt.want)
		}
	}
	snap, err := Compile(&Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Config().Client.CaptiveCheck; got != DefaultCaptiveCheck {
		t.Errorf("default captive check %q", got)
	}
}

func TestStubRangeFallbacks(t *testing.T) {
	c := &Config{
		Apps:   []App{{ID: "a", Hosts: []string{"198.18.1.0/24"}, TCP: "80"}},
		Client: ClientConfig{StubRangeFallbacks: []string{"198.18.0.0/15", "100.100.0.0/16", "10.0.0.0/33", "10.0.0.0/31"}},
	}
	err := c.Validate()
	want := []string{
		`client.stub_range_fallbacks[1]: "100.100.0.0/16": overlaps the stub range 100.64.0.0/10`,
		`client.stub_range_fallbacks[2]: "10.0.0.0/33": prefix length out of range`,
		`client.stub_range_fallbacks[3]: "10.0.0.0/31": stub range must have between 2 and 24 host bits`,
		`apps[0].hosts[0]: "198.18.1.0/24": overlaps the fallback stub range 198.18.0.0/15`,
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != len(want) {
		t.Fatalf("Validate = %v", err)
	}
	for i, w := range want {
		if got := ve.Problems[i].String(); !strings.HasPrefix(got, w) {
			t.Errorf("problem %d = %s, want %s…", i, got, w)
		}
	}
	c.Apps[0].Hosts = []string{"10.1.0.0/16"}
	c.Client.StubRangeFallbacks = []string{"198.18.0.0/15", "fd7a::/104"}
	snap, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	fb := snap.StubRangeFallbacks()
	if len(fb) != 2 || fb[0].String() != "198.18.0.0/15" || len(other(t, c, fb[0]).StubRangeFallbacks()) != 0 {
		t.Fatalf("fallbacks %v", fb)
	}
	o := other(t, c, fb[0])
	if o.StubRange() != fb[0] || snap.StubRange() != DefaultStubRange || c.Client.StubRange != "" {
		t.Errorf("WithStubRange: %v, original %v, input %q", o.StubRange(), snap.StubRange(), c.Client.StubRange)
	}
}

func other(t *testing.T, c *Config, stub netip.Prefix) *Snapshot {
	t.Helper()
	snap, err := Compile(WithStubRange(c, stub))
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
