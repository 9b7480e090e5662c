package platform

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// The netlink half of the router, as root, in a network namespace each test
// creates for itself (and removes, failed or not): the host's interfaces,
// routes and rules are never touched.

// testNetns is a private network namespace with a down TUN device zt0,
// standing in for the agent's TUN.
type testNetns struct {
	t    *testing.T
	name string
	nl   *netlink.Handle
}

func newTestNetns(t *testing.T) *testNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the router's netlink half runs in a network namespace of its own")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2")
	}
	var b [4]byte
	rand.Read(b[:])
	name := fmt.Sprintf("ztrt-%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	n := &testNetns{t: t, name: name, nl: nl}
	n.addTUN("zt0")
	return n
}

func (n *testNetns) ip(args ...string) string {
	n.t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.name}, args...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("ip -n %s %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// addTUN adds a persistent TUN device: the kind the agent routes into.
func (n *testNetns) addTUN(name string) netlink.Link {
	n.t.Helper()
	n.ip("tuntap", "add", "mode", "tun", "name", name)
	return n.link(name)
}

// addVeth adds a pair of devices, name and its peer name+"p".
func (n *testNetns) addVeth(name string) netlink.Link {
	n.t.Helper()
	n.ip("link", "add", name, "type", "veth", "peer", "name", name+"p")
	return n.link(name)
}

func (n *testNetns) link(name string) netlink.Link {
	n.t.Helper()
	link, err := n.nl.LinkByName(name)
	if err != nil {
		n.t.Fatal(err)
	}
	return link
}

// state is everything the router may change, as ip(8) prints it.
func (n *testNetns) state() string {
	n.t.Helper()
	return n.ip("-o", "address", "show") + n.ip("-br", "link", "show") +
		n.ip("route", "show", "table", "all") + n.ip("-6", "route", "show", "table", "all") +
		n.ip("rule", "show") + n.ip("-6", "rule", "show")
}

// routing is the rules and the agent's table.
func (n *testNetns) routing() string {
	n.t.Helper()
	var table []string
	for line := range strings.Lines(n.ip("route", "show", "table", "all") + n.ip("-6", "route", "show", "table", "all")) {
		if strings.Contains(line, "table 122") {
			table = append(table, line)
		}
	}
	return n.ip("rule", "show") + n.ip("-6", "rule", "show") + strings.Join(table, "")
}

func (n *testNetns) router(dir string) *journalledRouter {
	n.t.Helper()
	r, err := newLinuxRouter(n.nl, dir, zaptest.NewLogger(n.t))
	if err != nil {
		n.t.Fatalf("new router: %v", err)
	}
	return r
}

var (
	cfgA = RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10", "10.20.0.0/24", "fd7a:115c:a1e0::/48")}
	cfgB = RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10", "10.30.0.0/16")}
)

func TestRouterNetnsSetAndClose(t *testing.T) {
	n := newTestNetns(t)
	before := n.state()
	dir := t.TempDir()
	r := n.router(dir)
	if err := r.Set(cfgA); err != nil {
		t.Fatal(err)
	}
	got := n.routing()
	for _, want := range []string{"5270:\tnot from all fwmark 0x7a lookup 122",
		"100.64.0.0/10 dev zt0 table 122 proto 122 scope link", "10.20.0.0/24 dev zt0 table 122 proto 122 scope link",
		"fd7a:115c:a1e0::/48 dev zt0 table 122 proto 122"} {
		if !strings.Contains(got, want) {
			t.Errorf("after Set, no %q in:\n%s", want, got)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, routerJournalName)); err != nil {
		t.Errorf("no journal while routes are set: %v", err)
	}
	if err := r.Set(cfgB); err != nil {
		t.Fatal(err)
	}
	if got := n.routing(); strings.Contains(got, "10.20.0.0/24") || strings.Contains(got, "fd7a") ||
		!strings.Contains(got, "10.30.0.0/16 dev zt0") {
		t.Errorf("after the second Set:\n%s", got)
	}
	// The journal holds what is in force, no more: a repair now would not
	// look for the routes removed.
	j, err := newJournal(dir, routerJournalName)
	if err != nil {
		t.Fatal(err)
	}
	var journalled routerState
	if _, err := j.read(&journalled); err != nil {
		t.Fatal(err)
	}
	dev, _, err := r.sys.device(cfgB.Interface)
	if err != nil {
		t.Fatal(err)
	}
	inForce := r.compile(cfgB, dev, journalled.link(dev).Up)
	if ops := opStrings(planRouter(journalled, inForce)); len(ops) != 0 {
		t.Errorf("journal %+v differs from the state in force %+v: %q", journalled, inForce, ops)
	}
	if ops := opStrings(planRouter(inForce, journalled)); len(ops) != 0 {
		t.Errorf("journal %+v holds more than the state in force %+v: %q", journalled, inForce, ops)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if after := n.state(); after != before {
		t.Errorf("Close left the namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, routerJournalName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal left after Close: %v", err)
	}
	if err := r.Set(cfgA); err == nil {
		t.Error("Set after Close succeeded")
	}
}

var errRouterKilled = errors.New("killed")

// killRouterAfter makes r stop after k changes, as a kill would: the router is
// then dropped without Close.
func killRouterAfter(r *journalledRouter, k int) *int {
	done := 0
	apply := r.apply
	r.apply = func(op routerOp) error {
		if done == k {
			return errRouterKilled
		}
		done++
		return apply(op)
	}
	return &done
}

// TestRouterNetnsRepairAfterKill kills the router after each change of a
// first Set and of a second one, and checks that the next start puts the
// namespace back exactly as it was: when the device outlived the agent (its
// addresses and routes still there), and when it died with it and a new
// device of the same name is there (a restarted agent's new TUN).
func TestRouterNetnsRepairAfterKill(t *testing.T) {
	steps := len(planRouter(routerState{}, compileRouter(cfgA, 1, true)))
	for _, second := range []bool{false, true} {
		for k := 0; k <= steps; k++ {
			for _, newTUN := range []bool{false, true} {
				name := fmt.Sprintf("first set killed after %d changes", k)
				if second {
					name = fmt.Sprintf("second set killed after %d changes", k)
				}
				if newTUN {
					name += ", device gone"
				}
				t.Run(name, func(t *testing.T) {
					n := newTestNetns(t)
					before, beforeRouting := n.state(), n.routing()
					dir := t.TempDir()
					r := n.router(dir)
					if second {
						if err := r.Set(cfgA); err != nil {
							t.Fatal(err)
						}
					}
					done := killRouterAfter(r, k)
					next := cfgA
					if second {
						next = cfgB
					}
					if err := r.Set(next); err != nil && !errors.Is(err, errRouterKilled) {
						t.Fatal(err)
					}
					t.Logf("killed after %d changes", *done)
					if newTUN {
						old, err := n.nl.LinkByName("zt0")
						if err != nil {
							t.Fatal(err)
						}
						if err := n.nl.LinkDel(old); err != nil {
							t.Fatal(err)
						}
						// The new device has no address: its index
						// shows nowhere in the state compared.
						n.addTUN("zt0")
					}
					r2 := n.router(dir)
					if got := n.state(); got != before {
						t.Errorf("after repair:\n%s\nwant as before:\n%s", got, before)
					}
					if got := n.routing(); got != beforeRouting {
						t.Errorf("routing after repair:\n%s\nwant:\n%s", got, beforeRouting)
					}
					if _, err := os.Stat(filepath.Join(dir, routerJournalName)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("journal left after repair: %v", err)
					}
					// The repaired router works.
					if err := r2.Set(cfgA); err != nil {
						t.Fatal(err)
					}
					if err := r2.Close(); err != nil {
						t.Fatal(err)
					}
					if got := n.state(); got != before {
						t.Errorf("after Set and Close of the repaired router:\n%s\nwant:\n%s", got, before)
					}
				})
			}
		}
	}
}

// TestRouterNetnsLeavesOthersAlone: a rule identical to the agent's, an
// address the agent also wants, and a route in the agent's table that are
// someone else's are there before the agent and after it, whether it stops
// or is killed.
func TestRouterNetnsLeavesOthersAlone(t *testing.T) {
	for _, killed := range []bool{false, true} {
		t.Run(fmt.Sprintf("killed=%v", killed), func(t *testing.T) {
			n := newTestNetns(t)
			n.addVeth("other")
			n.ip("link", "set", "other", "up")
			n.ip("rule", "add", "priority", "5270", "not", "fwmark", "0x7a/0xffffffff", "lookup", "122")
			n.ip("address", "add", "100.64.0.1/32", "dev", "zt0")
			n.ip("route", "add", "10.20.0.0/24", "dev", "other", "table", "122")
			before := n.state()
			dir := t.TempDir()
			r := n.router(dir)
			if err := r.Set(cfgA); err != nil {
				t.Fatal(err)
			}
			if got := n.ip("rule", "show"); strings.Count(got, "lookup 122") != 1 {
				t.Errorf("the agent's rule added twice:\n%s", got)
			}
			if killed {
				r = n.router(dir) // repairs
			} else if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if got := n.state(); got != before {
				t.Errorf("after:\n%s\nwant as before:\n%s", got, before)
			}
		})
	}
}

// TestRouterNetnsJournalOfAnotherDevice: the journal's device index now
// belongs to a device of another name, and a journalled rule was never
// added (killed between the journal and the change): the repair touches
// neither that device nor anything else.
func TestRouterNetnsJournalOfAnotherDevice(t *testing.T) {
	n := newTestNetns(t)
	other := n.addVeth("other")
	n.ip("link", "set", "other", "up")
	n.ip("address", "add", "100.64.0.1/32", "dev", "other")
	n.ip("route", "add", "100.64.0.0/10", "dev", "other", "table", "122", "proto", "122")
	before := n.state()
	dir := t.TempDir()
	j, err := newJournal(dir, routerJournalName)
	if err != nil {
		t.Fatal(err)
	}
	left := compileRouter(RouterConfig{Interface: "zt0", Addrs: routerPrefixes("100.64.0.1/32"),
		Routes: routerPrefixes("100.64.0.0/10")}, other.Attrs().Index, true)
	if err := j.write(left); err != nil {
		t.Fatal(err)
	}
	n.router(dir)
	if got := n.state(); got != before {
		t.Errorf("after repair:\n%s\nwant as before:\n%s", got, before)
	}
}

// TestRouteOnGoneDevice: a route names its device by index alone (no lookup
// per route), so a device gone between the plan and the change must still
// fail an addition with the device named, and let a removal succeed.
func TestRouteOnGoneDevice(t *testing.T) {
	n := newTestNetns(t)
	link := n.addTUN("ztgone0")
	dev := linkSpec{Name: "ztgone0", Index: link.Attrs().Index}
	n.ip("link", "set", "ztgone0", "up")
	sys := netlinkOS{nl: n.nl}
	route := routeSpec{Dst: netip.MustParsePrefix("100.64.0.0/10"), Table: routeTable}
	if err := sys.apply(routerOp{Kind: opRouteAdd, Link: dev, Route: route}); err != nil {
		t.Fatalf("route on a present device: %v", err)
	}
	n.ip("link", "del", "ztgone0")
	err := sys.apply(routerOp{Kind: opRouteAdd, Link: dev, Route: route})
	if err == nil || !strings.Contains(err.Error(), "ztgone0") || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("route added on a gone device: %v, want an error naming it gone", err)
	}
	if err := sys.apply(routerOp{Kind: opRouteDel, Link: dev, Route: route}); err != nil {
		t.Fatalf("removing a route of a gone device: %v, want done", err)
	}
}

// TestMainRoutes: the network monitor's read of the main table returns the
// main table's routes, exactly, and none of the agent's own table (2,000
// routes here, 30,000 with 10,000 apps).
func TestMainRoutes(t *testing.T) {
	n := newTestNetns(t)
	n.ip("link", "set", "zt0", "up")
	n.ip("address", "add", "10.99.0.1/24", "dev", "zt0")
	n.ip("route", "add", "10.98.0.0/16", "dev", "zt0")
	var batch strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&batch, "route add 172.%d.%d.0/24 dev zt0 table %d\n", 16+i/256, i%256, routeTable)
	}
	cmd := exec.Command("ip", "-n", n.name, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	h, err := netns.GetFromName(n.name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	routes, err := mainRoutes(h)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		if r.Table != unix.RT_TABLE_MAIN {
			t.Errorf("route of table %d: %v", r.Table, r)
		}
		if r.Dst != nil && r.Dst.IP.To4() != nil {
			got = append(got, r.Dst.String())
		}
	}
	slices.Sort(got)
	if want := []string{"10.98.0.0/16", "10.99.0.0/24"}; !slices.Equal(got, want) {
		t.Errorf("main table's IPv4 routes %v, want %v", got, want)
	}
}
