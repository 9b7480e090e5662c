package steering

import (
	"reflect"
	"slices"
	"testing"
	"unsafe"
)

func TestPackApps(t *testing.T) {
	in := &Config{Apps: []App{
		{ID: "a", Name: "A", Hosts: []string{"x.example", "*.y.example"}, TCP: "443", Publishers: []string{"p1", "p2"}, Tags: []string{"t"}},
		{ID: "b", Hosts: []string{"10.0.0.0/8"}, TCP: "443", UDP: "53", Publishers: []string{"p1", "p2"}, Tunnel: TunnelL7},
		{ID: "c", Hosts: []string{"z.example", "x.example"}, TCP: "443", Publishers: []string{"p1"}},
	}}
	orig := cloneApps(in.Apps)
	s, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Apps, orig) {
		t.Fatalf("Compile modified its input: %+v", in.Apps)
	}
	a, b, c := s.AppAt(0), s.AppAt(1), s.AppAt(2)
	// Equal values share their bytes, and no string is the input's.
	if unsafe.StringData(a.TCP) != unsafe.StringData(b.TCP) ||
		unsafe.StringData(a.Hosts[0]) != unsafe.StringData(c.Hosts[1]) ||
		unsafe.StringData(a.Hosts[0]) == unsafe.StringData(in.Apps[0].Hosts[0]) {
		t.Error("equal strings not shared, or not copied")
	}
	if &a.Publishers[0] != &b.Publishers[0] || &a.Publishers[0] == &in.Apps[0].Publishers[0] {
		t.Error("equal publisher lists not shared, or not copied")
	}
	if got := s.strs(s.hosts); !slices.Equal(got, []string{"x.example", "*.y.example", "10.0.0.0/8", "z.example", "x.example"}) {
		t.Errorf("hosts = %q, not the apps' hosts in turn", got)
	}
	// Config's apps are windows of one hosts array; one cannot grow into
	// the next app's.
	cfg := s.Config()
	if unsafe.Add(unsafe.Pointer(unsafe.SliceData(cfg.Apps[0].Hosts)), 2*unsafe.Sizeof("")) != unsafe.Pointer(unsafe.SliceData(cfg.Apps[1].Hosts)) {
		t.Error("Config's hosts are not one array")
	}
	_ = append(cfg.Apps[0].Hosts, "grown.example")
	if cfg.Apps[1].Hosts[0] != "10.0.0.0/8" {
		t.Errorf("appending to one app's hosts changed the next app's: %q", cfg.Apps[1].Hosts[0])
	}
	if b.Tags != nil || c.Tags != nil {
		t.Errorf("absent tags not nil: %q, %q", b.Tags, c.Tags)
	}
	// A Config is the caller's: changing it changes neither the snapshot
	// nor the next Config.
	cfg.Apps[0].Hosts[0], cfg.Apps[0].Publishers[0] = "changed.example", "changed"
	cfg.Client.StubRangeFallbacks = append(cfg.Client.StubRangeFallbacks, "x")
	if got := s.Config(); got.Apps[0].Hosts[0] != "x.example" || got.Apps[1].Publishers[0] != "p1" ||
		s.AppAt(0).Hosts[0] != "x.example" || len(got.Client.StubRangeFallbacks) != 0 {
		t.Error("a Config shares lists with the snapshot")
	}
}

func TestPacker(t *testing.T) {
	p := packer{at: map[string]uint32{}}
	for _, v := range []string{"ab", "", "cd", "ab", "abcd"} {
		p.add(v)
	}
	p.pack()
	if p.text != "abcdabcd" || p.ref("cd") != (strRef{2, 2}) || p.str("abcd") != "abcd" || p.str("") != "" {
		t.Errorf("packed %q, cd at %v", p.text, p.ref("cd"))
	}
	if got := p.strs([]string{}); got == nil || len(got) != 0 {
		t.Errorf("strs(empty) = %#v, want an empty list", got)
	}
	if p.strs(nil) != nil {
		t.Error("strs(nil) not nil")
	}
}

// cloneApps returns a deep copy of apps.
func cloneApps(apps []App) []App {
	out := slices.Clone(apps)
	for i := range out {
		out[i].Hosts = slices.Clone(out[i].Hosts)
		out[i].Publishers = slices.Clone(out[i].Publishers)
		out[i].Tags = slices.Clone(out[i].Tags)
	}
	return out
}
