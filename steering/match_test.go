package steering

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, c *Config) *Snapshot {
	t.Helper()
	s, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var matchConfig = &Config{
	Apps: []App{
		/*0*/ {ID: "wiki", Hosts: []string{"wiki.corp.test", "*.corp.test"}, TCP: "443"},
		/*1*/ {ID: "dev", Hosts: []string{"*.dev.corp.test", "10.0.0.0/8"}, TCP: "22,443"},
		/*2*/ {ID: "db", Hosts: []string{"10.1.0.0/16", "db.corp.test"}, TCP: "5432"},
		/*3*/ {ID: "voip", Hosts: []string{"10.1.2.10-10.1.2.20", "fd00:9::/64"}, UDP: "5060-5061"},
		/*4*/ {ID: "wiki2", Hosts: []string{"wiki.corp.test"}, TCP: "443,8443"},
		/*5*/ {ID: "v6", Hosts: []string{"fd00::/16", "fd00:9::5"}, TCP: "*"},
	},
	Exceptions: Exceptions{
		Domains:   []string{"public.corp.test", "*.cdn.corp.test"},
		Addresses: []string{"10.1.3.0/24", "fd00:dead::/32"},
		Pinned: []PinnedApp{
			{Name: "chrome", OS: "windows", Field: "process", Pattern: `(?i)^chrome\.exe$`},
			{Name: "banking", OS: "darwin", Field: "appid", Pattern: `^com\.bank\.`, Action: "block"},
			{Name: "slow", OS: "linux", Field: "path", Pattern: `^(a+)+$`},
		},
	},
}

func TestMatchName(t *testing.T) {
	s := mustCompile(t, matchConfig)
	tests := []struct {
		name, app, rule string
		action          Action
	}{
		{"wiki.corp.test", "wiki", `apps[0].hosts[0] "wiki.corp.test"`, L7},
		{"WIKI.Corp.Test.", "wiki", `apps[0].hosts[0] "wiki.corp.test"`, L7},
		{"x.corp.test", "wiki", `apps[0].hosts[1] "*.corp.test"`, L7},
		{"a.b.c.corp.test", "wiki", `apps[0].hosts[1] "*.corp.test"`, L7},
		{"corp.test", "", "", Direct},                                                // a wildcard never matches its apex
		{"x.dev.corp.test", "dev", `apps[1].hosts[0] "*.dev.corp.test"`, L7},         // longest wildcard
		{"dev.corp.test", "wiki", `apps[0].hosts[1] "*.corp.test"`, L7},              // apex of *.dev falls to *.corp
		{"db.corp.test", "db", `apps[2].hosts[1] "db.corp.test"`, L7},                // exact beats wildcard
		{"public.corp.test", "", `exceptions.domains[0] "public.corp.test"`, Direct}, // exception beats wildcard app
		{"img.cdn.corp.test", "", `exceptions.domains[1] "*.cdn.corp.test"`, Direct},
		{"cdn.corp.test", "wiki", `apps[0].hosts[1] "*.corp.test"`, L7},
		{"example.com", "", "", Direct},
		{"", "", "", Direct},
		{strings.Repeat("a.", 130) + "corp.test", "", "", Direct},
		{".corp.test", "", "", Direct},   // an empty label is no DNS name,
		{"a..corp.test", "", "", Direct}, // so it falls below no wildcard
		{"x.corp.test..", "", "", Direct},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.MatchName(tt.name)
			if d.Action != tt.action || d.Rule != tt.rule || appID(d) != tt.app || d.Reason == "" {
				t.Fatalf("MatchName(%q) = %v %q %q (%s); want %v %q %q", tt.name, d.Action, appID(d), d.Rule, d.Reason, tt.action, tt.app, tt.rule)
			}
		})
	}
}

func appID(d Decision) string {
	if d.App == nil {
		return ""
	}
	return d.App.ID
}

func TestMatchFlow(t *testing.T) {
	s := mustCompile(t, matchConfig)
	a := netip.MustParseAddr
	tests := []struct {
		name   string
		f      Flow
		action Action
		app    string
		rule   string
		reason string
	}{
		{"lpm /16 beats /8", Flow{Addr: a("10.1.9.9"), Proto: TCP, Port: 5432}, L7, "db", `apps[2].hosts[0] "10.1.0.0/16"`, "longest matching prefix"},
		{"port falls back to /8", Flow{Addr: a("10.1.9.9"), Proto: TCP, Port: 22}, L7, "dev", `apps[1].hosts[1] "10.0.0.0/8"`, ""},
		{"no app admits port", Flow{Addr: a("10.1.9.9"), Proto: TCP, Port: 80}, Direct, "", `apps[2].hosts[0] "10.1.0.0/16"`, "no matching app admits"},
		{"range, udp", Flow{Addr: a("10.1.2.15"), Proto: UDP, Port: 5060}, L7, "voip", `apps[3].hosts[0] "10.1.2.10-10.1.2.20"`, ""},
		{"range edge", Flow{Addr: a("10.1.2.21"), Proto: UDP, Port: 5060}, Direct, "", `apps[2].hosts[0] "10.1.0.0/16"`, ""},
		{"4in6 flow is IPv4", Flow{Addr: a("::ffff:10.1.2.10"), Proto: UDP, Port: 5061}, L7, "voip", `apps[3].hosts[0] "10.1.2.10-10.1.2.20"`, ""},
		{"address exception", Flow{Addr: a("10.1.3.7"), Proto: TCP, Port: 5432}, Direct, "", `exceptions.addresses[0] "10.1.3.0/24"`, "address exception"},
		{"outside everything", Flow{Addr: a("192.0.2.1"), Proto: TCP, Port: 443}, Direct, "", "", "no exception or app host contains"},
		{"invalid address", Flow{Proto: TCP, Port: 443}, Direct, "", "", ""},
		{"ipv6 single address beats /64", Flow{Addr: a("fd00:9::5"), Proto: TCP, Port: 80}, L7, "v6", `apps[5].hosts[1] "fd00:9::5"`, ""},
		{"ipv6 /64 udp", Flow{Addr: a("fd00:9::6"), Proto: UDP, Port: 5060}, L7, "voip", `apps[3].hosts[1] "fd00:9::/64"`, ""},
		{"ipv6 tcp falls to /16", Flow{Addr: a("fd00:9::6"), Proto: TCP, Port: 1}, L7, "v6", `apps[5].hosts[0] "fd00::/16"`, ""},
		{"ipv6 exception", Flow{Addr: a("fd00:dead::1"), Proto: TCP, Port: 1}, Direct, "", `exceptions.addresses[1] "fd00:dead::/32"`, ""},
		{"fqdn exact", Flow{Addr: a("100.64.0.9"), FQDN: "wiki.corp.test", Proto: TCP, Port: 443}, L7, "wiki", `apps[0].hosts[0] "wiki.corp.test"`, "admits the protocol and port"},
		{"fqdn tie: second app by port", Flow{Addr: a("100.64.0.9"), FQDN: "wiki.corp.test", Proto: TCP, Port: 8443}, L7, "wiki2", `apps[4].hosts[0] "wiki.corp.test"`, ""},
		{"fqdn falls to wildcard by port", Flow{FQDN: "db.corp.test", Proto: TCP, Port: 443}, L7, "wiki", `apps[0].hosts[1] "*.corp.test"`, "wildcard"},
		{"fqdn no port", Flow{FQDN: "x.corp.test", Proto: UDP, Port: 53}, Direct, "", `apps[0].hosts[1] "*.corp.test"`, "no matching app admits"},
		{"fqdn exception", Flow{FQDN: "public.corp.test", Proto: TCP, Port: 443}, Direct, "", `exceptions.domains[0] "public.corp.test"`, ""},
		{"stub name gone", Flow{Addr: a("100.64.0.9"), FQDN: "gone.example", Proto: TCP, Port: 443}, Direct, "", "", "stub address whose name"},
		{"named real address falls back to address rules", Flow{Addr: a("10.1.9.9"), FQDN: "host.other.test", Proto: TCP, Port: 5432}, L7, "db", `apps[2].hosts[0] "10.1.0.0/16"`, ""},
		{"name rule beats address rule", Flow{Addr: a("10.1.9.9"), FQDN: "x.dev.corp.test", Proto: TCP, Port: 22}, L7, "dev", `apps[1].hosts[0] "*.dev.corp.test"`, ""},
		{"name ports miss, address admits", Flow{Addr: a("10.1.9.9"), FQDN: "wiki.corp.test", Proto: TCP, Port: 5432}, L7, "db", `apps[2].hosts[0] "10.1.0.0/16"`, ""},
		{"address exception beats name rule", Flow{Addr: a("10.1.3.3"), FQDN: "wiki.corp.test", Proto: TCP, Port: 443}, Direct, "", `exceptions.addresses[0] "10.1.3.0/24"`, ""},
		{"stub without name", Flow{Addr: a("100.64.0.9"), Proto: TCP, Port: 443}, Direct, "", "", "stands for no known name"},
		{"invalid fqdn on stub", Flow{Addr: a("100.64.0.9"), FQDN: strings.Repeat("a", 300), Proto: TCP, Port: 443}, Direct, "", "", "not a valid DNS name"},
		{"pinned bypass", Flow{Addr: a("10.1.9.9"), Proto: TCP, Port: 5432, OS: "windows", Process: "Chrome.EXE"}, Direct, "db", `exceptions.pinned[0] "(?i)^chrome\\.exe$"`, "bypass"},
		{"pinned other os", Flow{Addr: a("10.1.9.9"), Proto: TCP, Port: 5432, OS: "linux", Process: "chrome.exe"}, L7, "db", `apps[2].hosts[0] "10.1.0.0/16"`, ""},
		{"pinned other field", Flow{Addr: a("10.1.9.9"), Proto: TCP, Port: 5432, OS: "darwin", Process: "com.bank.app"}, L7, "db", `apps[2].hosts[0] "10.1.0.0/16"`, ""},
		{"pinned block", Flow{Addr: a("10.1.9.9"), Proto: TCP, Port: 5432, OS: "darwin", AppID: "com.bank.app"}, Block, "db", `exceptions.pinned[1] "^com\\.bank\\."`, "block"},
		{"pinned only on steered flows", Flow{Addr: a("192.0.2.1"), Proto: TCP, Port: 443, OS: "darwin", AppID: "com.bank.app"}, Direct, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.MatchFlow(tt.f)
			if d.Action != tt.action || appID(d) != tt.app || d.Rule != tt.rule || !strings.Contains(d.Reason, tt.reason) || d.Reason == "" {
				t.Fatalf("MatchFlow = %v %q %q (%s)\n         want %v %q %q (%s)", d.Action, appID(d), d.Rule, d.Reason, tt.action, tt.app, tt.rule, tt.reason)
			}
		})
	}
}

// TestPinnedTimeout runs a catastrophic pattern: the match must give up, and
// the flow must stay steered with a reason that says why. The result is cached,
// so the second flow of the same process does not run the pattern again.
func TestPinnedTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the pattern timeout")
	}
	s := mustCompile(t, matchConfig)
	f := Flow{Addr: netip.MustParseAddr("10.1.9.9"), Proto: TCP, Port: 5432, OS: "linux", Path: strings.Repeat("a", 40) + "!"}
	d := s.MatchFlow(f)
	if d.Action != L7 || !strings.Contains(d.Reason, "treated as not matching") || !strings.Contains(d.Reason, "exceptions.pinned[2]") {
		t.Fatalf("timeout decision = %+v", d)
	}
	if r, ok := s.cache.get(pinnedKey{f.OS, f.Process, f.Path, f.AppID}); !ok || r.timedOut != 2 {
		t.Fatalf("cache = %+v, %v", r, ok)
	}
	if d2 := s.MatchFlow(f); d2 != d {
		t.Fatalf("cached decision differs: %+v", d2)
	}
}

func TestMatchZeroAlloc(t *testing.T) {
	s := mustCompile(t, matchConfig)
	flows := []Flow{
		{Addr: netip.MustParseAddr("10.1.9.9"), Proto: TCP, Port: 22},
		{Addr: netip.MustParseAddr("fd00:9::6"), Proto: UDP, Port: 5060},
		{Addr: netip.MustParseAddr("100.64.0.1"), FQDN: "X.dev.corp.test.", Proto: TCP, Port: 443},
		{Addr: netip.MustParseAddr("100.64.0.1"), FQDN: "x.corp.test", Proto: UDP, Port: 1},
		{Addr: netip.MustParseAddr("10.1.9.9"), Proto: TCP, Port: 5432, OS: "windows", Process: "chrome.exe"},
	}
	s.MatchFlow(flows[4]) // fill the pinned cache
	for _, f := range flows {
		if n := testing.AllocsPerRun(100, func() { s.MatchFlow(f) }); n != 0 {
			t.Errorf("MatchFlow(%+v): %v allocs", f, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { s.MatchName("A.B.Dev.Corp.Test") }); n != 0 {
		t.Errorf("MatchName: %v allocs", n)
	}
}

func TestSnapshotAccessors(t *testing.T) {
	s := mustCompile(t, matchConfig)
	// fd00:dead::/32 lies inside fd00::/16 and is cut out.
	got := prefixString(s.Prefixes())
	if !strings.Contains(got, "10.1.0.0/23 10.1.2.0/24 10.1.4.0/22") || strings.Contains(got, "10.1.3.0") {
		t.Fatalf("Prefixes = %s", got)
	}
	for _, p := range s.Prefixes() {
		if p.Overlaps(netip.MustParsePrefix("10.1.3.0/24")) || p.Overlaps(netip.MustParsePrefix("fd00:dead::/32")) {
			t.Fatalf("route %s covers an address exception", p)
		}
	}
	if s.App("db") == nil || s.App("db").ID != "db" || s.App("nope") != nil {
		t.Fatal("App lookup")
	}
	if len(s.Warnings()) == 0 {
		t.Fatal("expected the wiki.corp.test tie warning")
	}
}

// TestMatchAgainstNaive compares the indexed matcher with a linear scan over
// random, heavily overlapping configs.
func TestMatchAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 100 {
		c := randomConfig(rng)
		s, err := Compile(c)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		nv := newNaive(t, c)
		for range 300 {
			f := randomFlow(rng)
			want := nv.matchAddr(f)
			d := s.MatchFlow(f)
			if got := appIndex(c, d); got != want {
				t.Fatalf("round %d: MatchFlow(%v %v/%d) = app %d (%s), naive says %d", round, f.Addr, f.Proto, f.Port, got, d.Rule, want)
			}
			name := randomName(rng)
			if got, want := appIndex(c, s.MatchName(name)), nv.matchName(name); got != want {
				t.Fatalf("round %d: MatchName(%q) = %d, naive %d", round, name, got, want)
			}
			f.FQDN = name
			if got, want := appIndex(c, s.MatchFlow(f)), nv.matchFlowName(f); got != want {
				t.Fatalf("round %d: MatchFlow(%q %v/%d) = %d, naive %d", round, name, f.Proto, f.Port, got, want)
			}
		}
	}
}

func appIndex(c *Config, d Decision) int {
	if !d.Steered() {
		return -1
	}
	for i := range c.Apps {
		if c.Apps[i].ID == d.App.ID {
			return i
		}
	}
	return -2
}

// matchFlowName is MatchFlow's rule for flows with a name and a real address:
// name exceptions, address exceptions, name rules, address rules.
func (n *naive) matchFlowName(f Flow) int {
	name := strings.ToLower(strings.TrimSuffix(f.FQDN, "."))
	for _, s := range n.exDom {
		if s.Kind == HostName && s.Name == name || s.Kind == HostWildcard && strings.HasSuffix(name, "."+s.Name) {
			return -1
		}
	}
	for _, s := range n.exAdr {
		for _, p := range s.Prefixes {
			if p.Contains(f.Addr) {
				return -1
			}
		}
	}
	if a := n.matchNamePort(f.FQDN, f.Proto, f.Port); a >= 0 {
		return a
	}
	return n.matchAddr(f)
}

func (n *naive) matchNamePort(name string, proto Protocol, port uint16) int {
	// Same as matchName, restricted to apps that admit the port.
	saved := n.apps
	defer func() { n.apps = saved }()
	filtered := make([]checkedApp, len(saved))
	for i, a := range saved {
		ports := a.tcp
		if proto == UDP {
			ports = a.udp
		}
		if ports.contains(port) {
			filtered[i] = a
		}
	}
	n.apps = filtered
	return n.matchName(name)
}

func randomConfig(rng *rand.Rand) *Config {
	ports := []string{"", "22", "443", "22,443", "1-1000", "*"}
	c := &Config{}
	for i := range 3 + rng.IntN(25) {
		a := App{ID: fmt.Sprintf("a%d", i), TCP: ports[1+rng.IntN(len(ports)-1)], UDP: ports[rng.IntN(len(ports))]}
		for range 1 + rng.IntN(4) {
			a.Hosts = append(a.Hosts, randomHost(rng))
		}
		c.Apps = append(c.Apps, a)
	}
	for range rng.IntN(3) {
		c.Exceptions.Addresses = append(c.Exceptions.Addresses, randomPrefix(rng).String())
	}
	if rng.IntN(2) == 0 {
		c.Exceptions.Domains = append(c.Exceptions.Domains, "*."+randomName(rng))
	}
	return c
}

func randomHost(rng *rand.Rand) string {
	switch rng.IntN(5) {
	case 0:
		return asWritten(rng, randomName(rng))
	case 1:
		return "*." + asWritten(rng, randomName(rng))
	case 2:
		lo := rng.IntN(1 << 12)
		return fmt.Sprintf("%s-%s", v4(lo), v4(lo+rng.IntN(300)))
	}
	return randomPrefix(rng).String()
}

// asWritten returns name as a config may write it: in upper case, or with a
// trailing dot, now and then.
func asWritten(rng *rand.Rand, name string) string {
	switch rng.IntN(6) {
	case 0:
		return strings.ToUpper(name)
	case 1:
		return name + "."
	}
	return name
}

func v4(n int) string { return fmt.Sprintf("10.0.%d.%d", n>>8, n&255) }

func randomPrefix(rng *rand.Rand) netip.Prefix {
	if rng.IntN(4) == 0 {
		a := netip.MustParseAddr(fmt.Sprintf("fd00::%x", rng.IntN(1<<12)))
		p, _ := a.Prefix(116 + rng.IntN(13))
		return p
	}
	a := netip.MustParseAddr(v4(rng.IntN(1 << 12)))
	p, _ := a.Prefix(18 + rng.IntN(15))
	return p
}

func randomName(rng *rand.Rand) string {
	labels := []string{"a", "b", "c"}
	n := "t"
	for range 1 + rng.IntN(3) {
		n = labels[rng.IntN(len(labels))] + "." + n
	}
	return n
}

func randomFlow(rng *rand.Rand) Flow {
	var a netip.Addr
	if rng.IntN(4) == 0 {
		a = netip.MustParseAddr(fmt.Sprintf("fd00::%x", rng.IntN(1<<12)))
	} else {
		a = netip.MustParseAddr(v4(rng.IntN(1 << 12)))
	}
	proto := TCP
	if rng.IntN(3) == 0 {
		proto = UDP
	}
	return Flow{Addr: a, Proto: proto, Port: []uint16{22, 443, 80, 2000}[rng.IntN(4)]}
}

// TestMatchConcurrent shares one snapshot between goroutines, as the data
// path does; run it with -race (the pinned-results cache is the shared part).
func TestMatchConcurrent(t *testing.T) {
	s := mustCompile(t, matchConfig)
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 300 {
				f := Flow{Addr: netip.MustParseAddr("10.1.9.9"), Proto: TCP, Port: 5432, OS: "windows",
					Process: fmt.Sprintf("p%d.exe", (i+w)%50)}
				if i%50 == 0 {
					f.Process = "chrome.exe"
				}
				d := s.MatchFlow(f)
				if want := f.Process == "chrome.exe"; (d.Action == Direct) != want {
					t.Errorf("MatchFlow(%s) = %v", f.Process, d.Action)
					return
				}
				s.MatchName("x.dev.corp.test")
			}
		}()
	}
	for range 4 {
		<-done
	}
}

func TestMatchPinned(t *testing.T) {
	cfg := &Config{
		Apps: []App{{ID: "web", Hosts: []string{"web.corp.example"}, TCP: "443"}},
		Exceptions: Exceptions{Pinned: []PinnedApp{
			{Name: "browsers", OS: "linux", Field: FieldProcess, Pattern: `^(?!chrome$|firefox$).*-pinned$`, Action: PinnedBypass},
			{Name: "blocked", OS: "linux", Field: FieldPath, Pattern: `^/opt/bad/`, Action: PinnedBlock},
		}},
	}
	snap, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.HasPinned("linux") || snap.HasPinned("windows") {
		t.Fatal("HasPinned")
	}
	cases := []struct {
		name string
		f    Flow
		want Action
		ok   bool
	}{
		{"bypassed process", Flow{OS: "linux", Process: "zoom-pinned"}, Direct, true},
		{"lookahead excludes chrome", Flow{OS: "linux", Process: "chrome"}, 0, false},
		{"blocked path", Flow{OS: "linux", Process: "x", Path: "/opt/bad/x"}, Block, true},
		{"other OS", Flow{OS: "windows", Process: "zoom-pinned"}, 0, false},
		{"no identity", Flow{OS: "linux"}, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := snap.MatchPinned(tc.f)
			if ok != tc.ok || (ok && d.Action != tc.want) {
				t.Fatalf("MatchPinned = %v %v (%s), want %v %v", d.Action, ok, d.Rule, tc.want, tc.ok)
			}
		})
	}
}
