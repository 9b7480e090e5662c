package steering

import (
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
	out, hosts := copyApps(in)
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
	var all []string
	for _, a := range orig {
		all = append(all, a.Hosts...)
	}
	if !reflect.DeepEqual(hosts, all) || &hosts[0] != &out[0].Hosts[0] || &hosts[len(hosts)-1] != &out[2].Hosts[len(out[2].Hosts)-1] {
		t.Errorf("hosts = %q, not the array of the apps' hosts %q", hosts, all)
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
