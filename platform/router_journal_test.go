package platform

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"
)

// fakeRouteOS is an OS routing table in memory, the way Windows and macOS
// keep it: one main table, routes by destination and device.
type fakeRouteOS struct {
	devs   map[string]int // name → index of the devices that exist
	up     map[int]bool
	metric map[int]int // interface metric the agent set; absent: automatic
	addrs  []linkAddr
	routes []linkRoute
	// killAfter, when >= 0, is how many more changes succeed before the
	// "process dies" (apply fails without changing anything).
	killAfter int
}

var errRouteKilled = errors.New("killed")

func newFakeRouteOS() *fakeRouteOS {
	return &fakeRouteOS{devs: map[string]int{"ztagent": 7, "Ethernet": 3}, up: map[int]bool{3: true},
		metric: map[int]int{}, killAfter: -1}
}

func (f *fakeRouteOS) device(name string) (linkSpec, bool, error) {
	i, ok := f.devs[name]
	if !ok {
		return linkSpec{}, false, fmt.Errorf("no device %s", name)
	}
	return linkSpec{Name: name, Index: i}, f.up[i], nil
}

func (f *fakeRouteOS) present(l linkSpec) (bool, error) { return f.devs[l.Name] == l.Index, nil }

func (f *fakeRouteOS) read(want routerState) (osRouting, error) {
	return osRouting{Addrs: slices.Clone(f.addrs), Routes: slices.Clone(f.routes)}, nil
}

func (f *fakeRouteOS) apply(op routerOp) error {
	if f.killAfter == 0 {
		return errRouteKilled
	}
	if f.killAfter > 0 {
		f.killAfter--
	}
	i := op.Link.Index
	switch op.Kind {
	case opAddrAdd:
		f.addrs = appendMissing(f.addrs, []linkAddr{{i, op.Addr}})
	case opAddrDel:
		f.addrs = slices.DeleteFunc(f.addrs, func(a linkAddr) bool { return a == linkAddr{i, op.Addr} })
	case opLinkUp:
		f.up[i] = true
	case opLinkDown:
		delete(f.up, i)
	case opMetricSet:
		f.metric[i] = op.Metric
	case opMetricAuto:
		delete(f.metric, i)
	case opRouteAdd:
		f.routes = appendMissing(f.routes, []linkRoute{{i, op.Route}})
	case opRouteDel:
		f.routes = slices.DeleteFunc(f.routes, func(r linkRoute) bool { return r == linkRoute{i, op.Route} })
	default:
		return fmt.Errorf("unexpected %s", op)
	}
	return nil
}

// snapshot is the fake's state, to compare before and after.
func (f *fakeRouteOS) snapshot() string {
	return fmt.Sprintf("up %v metric %v addrs %v routes %v", f.up, f.metric, f.addrs, f.routes)
}

func fakeCompile(cfg RouterConfig, dev linkSpec, broughtUp bool) routerState {
	return compileMain(cfg, dev, broughtUp, 5)
}

var testRouterCfg = RouterConfig{Interface: "ztagent",
	Addrs:  routerPrefixes("100.64.0.1/32"),
	Routes: routerPrefixes("100.64.0.0/10", "10.1.0.0/16", "fd7a::/48")}

func TestJournalledRouterSetClose(t *testing.T) {
	f := newFakeRouteOS()
	foreign := linkRoute{3, routeSpec{Dst: netip.MustParsePrefix("10.9.0.0/16")}}
	f.routes = append(f.routes, foreign)
	before := f.snapshot()
	r, err := newJournalledRouter(f, fakeCompile, t.TempDir(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(testRouterCfg); err != nil {
		t.Fatal(err)
	}
	if !f.up[7] || f.metric[7] != 5 || len(f.routes) != 4 || len(f.addrs) != 1 {
		t.Fatalf("after Set: %s", f.snapshot())
	}
	cfg := testRouterCfg
	cfg.Routes = cfg.Routes[:1]
	if err := r.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if want := []linkRoute{foreign, {7, routeSpec{Dst: cfg.Routes[0]}}}; !reflect.DeepEqual(f.routes, want) {
		t.Fatalf("after the second Set routes are %v, want %v", f.routes, want)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if after := f.snapshot(); after != before {
		t.Fatalf("Close left %s, want %s", after, before)
	}
}

func TestJournalledRouterLeavesForeignEntries(t *testing.T) {
	f := newFakeRouteOS()
	mine := linkRoute{7, routeSpec{Dst: netip.MustParsePrefix("10.1.0.0/16")}}
	f.routes = append(f.routes, mine) // someone else put it on the agent's device
	r, err := newJournalledRouter(f, fakeCompile, t.TempDir(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(testRouterCfg); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.routes, mine) {
		t.Fatalf("Close removed a route that was there before: %v", f.routes)
	}
}

// A run killed after any number of changes leaves a journal from which the
// next start puts the OS back exactly as it was.
func TestJournalledRouterRepairsAfterKill(t *testing.T) {
	for k := 0; ; k++ {
		f := newFakeRouteOS()
		before := f.snapshot()
		dir := t.TempDir()
		r, err := newJournalledRouter(f, fakeCompile, dir, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		f.killAfter = k
		err = r.Set(testRouterCfg)
		if err == nil {
			if k != 6 { // an address, up, the metric, three routes
				t.Fatalf("Set made all its changes in %d", k)
			}
			return
		}
		if !errors.Is(err, errRouteKilled) {
			t.Fatalf("kill after %d: %v", k, err)
		}
		f.killAfter = -1
		if _, err := newJournalledRouter(f, fakeCompile, dir, zaptest.NewLogger(t)); err != nil {
			t.Fatalf("repair after %d changes: %v", k, err)
		}
		if after := f.snapshot(); after != before {
			t.Fatalf("repair after %d changes left %s, want %s", k, after, before)
		}
	}
}

// A device that went away (Wintun adapters and utun devices die with the
// process) takes what the agent added with it; repair does not fail on it.
func TestJournalledRouterRepairsGoneDevice(t *testing.T) {
	f := newFakeRouteOS()
	dir := t.TempDir()
	r, err := newJournalledRouter(f, fakeCompile, dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(testRouterCfg); err != nil {
		t.Fatal(err)
	}
	delete(f.devs, "ztagent")
	f.devs["ztagent2"] = 7 // the index now names another device
	f.killAfter = 0        // no change may be made to it
	if _, err := newJournalledRouter(f, fakeCompile, dir, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	if found, err := (journal{path: r.journal.path}).read(&routerState{}); err != nil || found {
		t.Fatalf("journal still there (%v, %v) after the repair", found, err)
	}
}
