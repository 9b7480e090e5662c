package steering

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
)

// fullConfig sets every App field, nil and empty lists, and exceptions and
// client settings beside them.
func fullConfig() *Config {
	return &Config{
		Apps: []App{
			{ID: "full", Name: "Full app", Hosts: []string{"a.corp.test", "*.corp.test", "10.1.0.0/16", "10.2.0.1-10.2.0.9", "fd00::/64"},
				TCP: "22,443", UDP: "53", Publishers: []string{"p1", "p2"}, PublisherDNS: true, Tags: []string{"t1", "t2"}, Tunnel: TunnelL7},
			{ID: "same", Name: "same", Hosts: []string{"b.corp.test"}, TCP: "22,443", UDP: "53", Publishers: []string{"p1", "p2"}, Tags: []string{"t1", "t2"}},
			{ID: "empty", Hosts: []string{"c.corp.test"}, UDP: "53", Publishers: []string{}, Tags: []string{}},
			{ID: "none", Hosts: []string{"d.corp.test", "10.4.0.1"}, TCP: "*"},
			{ID: "l3", Hosts: []string{"10.3.0.0/16"}, TCP: "443", Tunnel: TunnelL3E, Tags: []string{"t1"}},
		},
		Exceptions: Exceptions{
			Domains: []string{"x.corp.test"}, Addresses: []string{"10.1.2.3"},
			Pinned: []PinnedApp{{Name: "pin", OS: "linux", Field: "process", Pattern: "^pin$"}},
		},
		Client: ClientConfig{
			StubRangeFallbacks: []string{"198.18.0.0/15"},
			OnPremDetection:    &OnPremDetection{DNS: &OnPremDNS{Name: "onprem.corp.test", Address: "10.9.9.9"}},
		},
	}
}

// liftL3ERefusal lets Compile accept the l3e tunnel that validation refuses
// as not supported yet, as it will once the L3E tunnel carries apps.
func liftL3ERefusal(t *testing.T) {
	rows := notSupportedYet
	notSupportedYet = nil
	t.Cleanup(func() { notSupportedYet = rows })
}

func TestConfigRoundTrip(t *testing.T) {
	liftL3ERefusal(t)
	in := fullConfig()
	s := mustCompile(t, in)
	want := in.withDefaults()
	want.Apps = cloneApps(in.Apps)
	for i := range want.Apps {
		if want.Apps[i].Tunnel == "" {
			want.Apps[i].Tunnel = TunnelL7
		}
	}
	want.Apps[2].Tags = nil // an empty tags list reads back as none, as it always did
	got := s.Config()
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Fatalf("Config() =\n%s\nwant\n%s", gj, wj)
	}
	if got.Apps[2].Publishers == nil || got.Apps[3].Publishers != nil || got.Apps[3].Tags != nil {
		t.Errorf("nil and empty lists not kept apart: %#v, %#v", got.Apps[2], got.Apps[3])
	}
	for i := range s.NumApps() {
		if a := s.AppAt(i); !reflect.DeepEqual(a, want.Apps[i]) {
			t.Errorf("AppAt(%d) = %+v, want %+v", i, a, want.Apps[i])
		}
	}
	if s.NumApps() != len(in.Apps) || !reflect.DeepEqual(*s.Client(), want.Client) {
		t.Errorf("NumApps %d, Client %+v; want %d, %+v", s.NumApps(), *s.Client(), len(in.Apps), want.Client)
	}
	if n := testing.AllocsPerRun(10, func() { _ = s.Client() }); n != 0 {
		t.Errorf("Client allocates %v", n)
	}
	// A recompile of the config gives the same config back.
	if again := mustCompile(t, got).Config(); !reflect.DeepEqual(again, want) {
		t.Errorf("recompiled Config() = %+v, want %+v", again, want)
	}
	if d := s.MatchFlow(Flow{Addr: netip.MustParseAddr("10.3.1.1"), Proto: TCP, Port: 443}); d.Action != L3E || d.App.Tunnel != TunnelL3E {
		t.Errorf("l3e app decided %v with %+v", d.Action, d.App)
	}
}

// TestConfigRoundTrip10k checks the materialized apps of a large config
// (shared port sets and lists, many windows of the hosts array) against the
// config as decoded.
func TestConfigRoundTrip10k(t *testing.T) {
	in := e2eConfig(2000)
	want := cloneApps(in.Apps)
	for i := range want {
		want[i].Tunnel = TunnelL7
	}
	s := mustCompile(t, in)
	if got := s.Config().Apps; !reflect.DeepEqual(got, want) {
		t.Fatal("Config().Apps differs from the config's apps")
	}
	if a := s.App("app-01234"); a == nil || !reflect.DeepEqual(*a, want[1234]) {
		t.Errorf("App(app-01234) = %+v", a)
	}
}

func TestDecisionAppCached(t *testing.T) {
	liftL3ERefusal(t)
	s := mustCompile(t, fullConfig())
	name := s.MatchName("a.corp.test")
	flow := s.MatchFlow(Flow{Addr: netip.MustParseAddr("10.1.9.9"), Proto: TCP, Port: 22})
	if name.App == nil || name.App.ID != "full" || flow.App != name.App || s.App("full") != name.App {
		t.Fatalf("Decision.App not one kept app: %p %p %p", name.App, flow.App, s.App("full"))
	}
	if s.App("same") != s.MatchName("b.corp.test").App || s.App("nope") != nil {
		t.Error("App(id) is not Decision.App")
	}
	f := Flow{Addr: netip.MustParseAddr("10.4.0.1"), Proto: TCP, Port: 80}
	if n := testing.AllocsPerRun(100, func() { s.MatchFlow(f) }); n != 0 {
		t.Errorf("MatchFlow of an app in use: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.MatchName("d.corp.test") }); n != 0 {
		t.Errorf("MatchName of an app in use: %v allocs", n)
	}
}

func TestAppAtNotCached(t *testing.T) {
	s := mustCompile(t, e2eConfig(600))
	for i := range s.NumApps() {
		_ = s.AppAt(i)
	}
	_ = s.Config()
	n := 0
	for i, a := range s.Apps() {
		if i != n || a.ID != s.AppAt(i).ID {
			t.Fatalf("Apps() gave %d %s at %d", i, a.ID, n)
		}
		n++
	}
	if n != s.NumApps() {
		t.Fatalf("Apps() walked %d apps, want %d", n, s.NumApps())
	}
	if allocs := testing.AllocsPerRun(3, func() {
		for range s.Apps() {
		}
	}); allocs > float64(s.NumApps()+1) {
		t.Errorf("a walk of Apps() allocates %v times, more than its host lists", allocs)
	}
	for i := range s.apps {
		if s.appCache.made(int32(i)) {
			t.Fatalf("app %d kept after AppAt and Config", i)
		}
	}
	if s.appCache.chunks[0].Load() != nil {
		t.Error("AppAt made a chunk of the app cache")
	}
	a := s.App("app-00300")
	if !s.appCache.made(300) || s.appCache.made(301) || s.App("app-00300") != a {
		t.Error("App(id) does not keep just its app")
	}
}

// made reports whether element i has been made.
func (l *lazy[T]) made(i int32) bool { return l.load(i) != nil }

// TestAppsWithoutHosts checks that the walk without hosts gives each app as
// AppAt does, Hosts aside, and allocates nothing.
func TestAppsWithoutHosts(t *testing.T) {
	s := mustCompile(t, e2eConfig(600))
	n := 0
	for i, a := range s.AppsWithoutHosts() {
		want := s.AppAt(i)
		want.Hosts = nil
		if i != n || !reflect.DeepEqual(a, want) {
			t.Fatalf("AppsWithoutHosts gave %d %+v at %d, want %+v", i, a, n, want)
		}
		n++
	}
	if n != s.NumApps() {
		t.Fatalf("walked %d apps, want %d", n, s.NumApps())
	}
	if allocs := testing.AllocsPerRun(3, func() {
		for range s.AppsWithoutHosts() {
		}
	}); allocs > 0 {
		t.Errorf("a walk without hosts allocates %v times", allocs)
	}
}
