package steering

import (
	"fmt"
	"reflect"
	"testing"
	"unsafe"
)

func TestCopyApps(t *testing.T) {
	in := []App{
		{ID: "a", Name: "A", Hosts: []string{"x.example", "*.y.example"}, TCP: "443", Publishers: []string{"p1", "p2"}, Tags: []string{"t"}},
		{ID: "b", Hosts: []string{"10.0.0.0/8"}, TCP: "443", UDP: "53", Publishers: []string{"p1", "p2"}, Tunnel: TunnelL7},
		{ID: "c", Hosts: []string{"x.example"}, Publishers: []string{"p1"}},
		{ID: "d"},
	}
	orig := make([]App, len(in))
	for i, a := range in {
		orig[i] = a
		orig[i].Hosts = append([]string(nil), a.Hosts...)
		orig[i].Publishers = append([]string(nil), a.Publishers...)
		orig[i].Tags = append([]string(nil), a.Tags...)
	}
	out := copyApps(in)
	if !reflect.DeepEqual(in, orig) {
		t.Fatalf("copyApps modified its input: %+v", in)
	}
	if !reflect.DeepEqual(out, orig) {
		t.Fatalf("copyApps = %+v, want %+v", out, orig)
	}
	// Equal values share their bytes; lists are the copy's own, and a
	// window of the shared hosts array cannot grow into the next app's.
	if unsafe.StringData(out[0].TCP) != unsafe.StringData(out[1].TCP) ||
		unsafe.StringData(out[0].Hosts[0]) != unsafe.StringData(out[2].Hosts[0]) {
		t.Error("equal strings not shared")
	}
	if &out[0].Publishers[0] != &out[1].Publishers[0] || &out[0].Publishers[0] == &in[0].Publishers[0] {
		t.Error("equal publisher lists not shared, or not copied")
	}
	if &out[0].Hosts[0] == &in[0].Hosts[0] {
		t.Error("hosts not copied")
	}
	_ = append(out[0].Hosts, "grown.example")
	if out[1].Hosts[0] != "10.0.0.0/8" {
		t.Errorf("appending to one app's hosts changed the next app's: %q", out[1].Hosts[0])
	}
	if out[3].Hosts != nil || out[3].Publishers != nil || out[3].Tags != nil {
		t.Errorf("nil lists not kept nil: %+v", out[3])
	}
}

func TestWithin(t *testing.T) {
	host := "*.corp.example"
	if got := within("corp.example", host); got != "corp.example" || unsafe.StringData(got) != unsafe.StringData(host[2:]) {
		t.Errorf("within did not point into the host")
	}
	if got := within("other.example", host); got != "other.example" {
		t.Errorf("within = %q", got)
	}
}

func TestNameMap(t *testing.T) {
	var m nameMap
	if _, ok := m.get([]byte("a.example")); ok {
		t.Fatal("empty map found a name")
	}
	const n = 1000
	for i := range n {
		if _, ok := m.set(fmt.Sprintf("n%d.example", i), int32(i)); ok {
			t.Fatalf("name %d found before it was set", i)
		}
	}
	if prev, ok := m.set("n7.example", 7000); !ok || prev != 7 {
		t.Fatalf("set again = %d, %v; want 7, true", prev, ok)
	}
	m.trim()
	for i := range n {
		want := int32(i)
		if i == 7 {
			want = 7000
		}
		if got, ok := m.get([]byte(fmt.Sprintf("n%d.example", i))); !ok || got != want {
			t.Fatalf("get n%d = %d, %v; want %d", i, got, ok, want)
		}
	}
	if _, ok := m.get([]byte("n1000.example")); ok || len(m.keys) != n {
		t.Fatalf("found a name never set, or %d names, want %d", len(m.keys), n)
	}
}
