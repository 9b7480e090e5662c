package steering

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// TestAppMatcher pins what an app covers for the PoP, including every case of
// the tenant's former matcher (enroll/hostmatch.go) and each place where it
// differed from the agent's, now decided as the agent steers.
func TestAppMatcher(t *testing.T) {
	m, err := CompileApp(&App{ID: "a", TCP: "22,80-90", UDP: "53", Hosts: []string{
		"10.1.0.0/16", "10.2.0.10-10.2.0.20", "fd00::/64", "2001:db8::1", "*.Example.COM", "web.corp.test",
		"x.10-b.corp.test", "0.0.0.0-0.0.0.9"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"10.1.255.255", true},
		{"10.0.255.255", false},
		{"10.2.0.10", true},
		{"10.2.0.20", true},
		{"10.2.0.21", false},
		{"10.2.0.9", false},
		{"0.0.0.0", true},
		{"fd00::5", true},
		{"fd01::5", false},
		{"2001:db8::1", true},
		{"2001:db8::2", false},
		{"::ffff:10.1.0.1", true}, // IPv4-mapped is read as IPv4, as flows are
		{"::a01:1", false},        // IPv4-compatible is IPv6: not 10.1.0.1
		{"a.example.com", true},
		{"A.B.EXAMPLE.COM.", true},
		{"example.com", false}, // a wildcard never covers its apex
		{"evilexample.com", false},
		{"web.corp.test", true},
		{"WEB.corp.test.", true},
		{"www.web.corp.test", false},
		{"x.10-b.corp.test", true}, // a name, not a range: the former matcher refused the host
		{"", false},
		// Where the former matcher differed, the agent's reading wins:
		{"[fd00::5]", false},                               // brackets belong to an authority, not a host
		{"fe80::1%eth0", false},                            // zones are never hosts
		{".example.com", false},                            // an empty label is no DNS name
		{"a..example.com", false},                          // likewise
		{strings.Repeat("a.", 126) + "example.com", false}, // longer than 253 bytes
		{"10.1.0.1.", false},                               // an address with a dot is neither address nor name
		{"10.1.0.01", false},                               // no octal-looking IPv4
	} {
		if got := m.MatchHost(tc.host); got != tc.want {
			t.Errorf("MatchHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	// A DNS name matches names only: an address literal as a query name is
	// not the app's address host (publisher-side DNS resolves names).
	for name, want := range map[string]bool{"a.example.com": true, "10.1.0.1": false, "2001:db8::1": false, "web.corp.test.": true} {
		if got := m.MatchName(name); got != want {
			t.Errorf("MatchName(%q) = %v, want %v", name, got, want)
		}
	}
	for _, tc := range []struct {
		p    Protocol
		port uint16
		want bool
	}{{TCP, 22, true}, {TCP, 85, true}, {TCP, 91, false}, {TCP, 53, false}, {UDP, 53, true}, {UDP, 22, false}, {Protocol(1), 22, false}} {
		if got := m.Admits(tc.p, tc.port); got != tc.want {
			t.Errorf("Admits(%v, %d) = %v, want %v", tc.p, tc.port, got, tc.want)
		}
	}
	if m.MatchAddr(netip.Addr{}) {
		t.Error("the zero address matched")
	}
}

func TestCompileAppProblems(t *testing.T) {
	_, err := CompileApp(&App{ID: "bad", Hosts: []string{"10.0.0.0/33", "ok.test", "a..b"}, TCP: "0"})
	want := "invalid config: 3 problems:\n" +
		`  hosts[0]: "10.0.0.0/33": prefix length out of range` + "\n" +
		`  hosts[2]: "a..b": empty label` + "\n" +
		`  tcp: "0": port 0 is not a valid port`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	_, err = CompileApp(&App{ID: "none"})
	want = "invalid config: 2 problems:\n  hosts: at least one host is required\n" + `  "none": app has neither tcp nor udp ports`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	// The stub range is a property of the whole config, not of an app.
	if _, err := CompileApp(&App{ID: "stub", Hosts: []string{"100.64.0.0/24"}, TCP: "1"}); err != nil {
		t.Fatal(err)
	}
}

// TestAppMatcherAgreesWithSnapshot: for a config of one app, the PoP's
// membership check admits exactly the flows the agent steers to the app.
func TestAppMatcherAgreesWithSnapshot(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for round := range 200 {
		c := randomConfig(rng)
		c.Apps, c.Exceptions = c.Apps[:1], Exceptions{}
		s := mustCompile(t, c)
		m, err := CompileApp(&c.Apps[0])
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			f := randomFlow(rng)
			want := s.MatchFlow(f).Steered()
			if got := m.MatchHost(f.Addr.String()) && m.Admits(f.Proto, f.Port); got != want {
				t.Fatalf("round %d: %v %v/%d: AppMatcher %v, Snapshot %v (%v)", round, f.Addr, f.Proto, f.Port, got, want, c.Apps[0])
			}
			name := randomName(rng)
			if got, want := m.MatchName(name), s.MatchName(name).Steered(); got != want {
				t.Fatalf("round %d: MatchName(%q): AppMatcher %v, Snapshot %v (%v)", round, name, got, want, c.Apps[0].Hosts)
			}
		}
	}
}

func TestAppMatcherZeroAlloc(t *testing.T) {
	m, err := CompileApp(&App{ID: "a", TCP: "80", Hosts: []string{"10.1.0.0/16", "fd00::/64", "*.corp.test", "web.corp.test"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"10.1.2.3", "fd00::1", "X.Corp.Test.", "web.corp.test", "other.test", "10.9.9.9"} {
		if n := testing.AllocsPerRun(100, func() { m.MatchHost(h) }); n != 0 {
			t.Errorf("MatchHost(%q): %v allocs", h, n)
		}
	}
}

func BenchmarkAppMatcher(b *testing.B) {
	m, err := CompileApp(&App{ID: "a", TCP: "80", Hosts: []string{"10.1.0.0/16", "fd00::/64", "*.corp.test", "web.corp.test"}})
	if err != nil {
		b.Fatal(err)
	}
	hosts := []string{"x.y.corp.test", "10.1.2.3", "fd00::1", "other.example"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.MatchHost(hosts[i&3])
		i++
	}
}

// FuzzAppMatcher: for any one-app config and any host, the PoP's membership
// check and the agent's matcher agree.
func FuzzAppMatcher(f *testing.F) {
	for _, s := range [][2]string{{"*.corp.test", "a..corp.test"}, {"*.b", ".b."}, {"10.0.0.0/8", "10.1.2.3"},
		{"fd00::/64", "fd00::1"}, {"web.corp.test", "WEB.CORP.TEST."}, {"10.0.0.1-10.0.0.9", "::ffff:10.0.0.5"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, query string) {
		app := App{ID: "a", Hosts: []string{host}, TCP: "80"}
		m, err := CompileApp(&app)
		if err != nil {
			return
		}
		s, err := Compile(&Config{Apps: []App{app}})
		if err != nil {
			return // a host in the stub range
		}
		if got, want := m.MatchName(query), s.MatchName(query).Steered(); got != want {
			t.Fatalf("host %q, name %q: AppMatcher %v, Snapshot %v", host, query, got, want)
		}
		a, err := netip.ParseAddr(query)
		if err != nil || a.Zone() != "" || s.StubRange().Contains(a.Unmap()) {
			return
		}
		want := s.MatchFlow(Flow{Addr: a, Proto: TCP, Port: 80}).Steered()
		if got := m.MatchHost(query) && m.Admits(TCP, 80); got != want {
			t.Fatalf("host %q, address %q: AppMatcher %v, Snapshot %v", host, query, got, want)
		}
	})
}
