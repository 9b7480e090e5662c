package platform

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

// systemd-resolved cannot run here (PID 1 is not systemd), so these tests run
// a private dbus-daemon and export on it a fake org.freedesktop.resolve1 that
// records every call.

const testBusConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// startTestBus runs a private dbus-daemon until the test ends and returns its
// address.
func startTestBus(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Geteuid() != 0 {
			t.Skip("SKIPPED LOUDLY: dbus-daemon is not installed (Debian package dbus-daemon) and installing it needs root")
		}
		if out, err := exec.Command("apt-get", "install", "-y", "-q", "dbus-daemon").CombinedOutput(); err != nil {
			t.Skipf("SKIPPED LOUDLY: installing dbus-daemon failed: %v\n%s", err, out)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, testBusConfig, filepath.Join(dir, "bus")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	return strings.TrimSpace(addr)
}

// fakeResolved is the Manager and per-link objects of org.freedesktop.resolve1.
type fakeResolved struct {
	journal string // recorded with each call: was the journal there?

	mu    sync.Mutex
	calls []string
	// dnsEx is the Manager's DNSEx property; without it only DNS is served.
	dnsEx        []fakeServer
	noDNSEx      bool
	fallback     []fakeServer   // FallbackDNSEx
	old          bool           // resolved before 240: no SetLinkDefaultRoute, no SetLinkDNSOverTLS
	defaultRoute map[int32]bool // per link; absent: the link has no object
	failOnce     string         // a method that fails the next time it is called
}

type fakeServer struct {
	Ifindex int32
	Family  int32
	Address []byte
	Port    uint16
	Name    string
}

func server(ifindex int32, addr string, port uint16) fakeServer {
	a := netip.MustParseAddr(addr)
	fam := int32(2)
	if a.Is6() {
		fam = 10
	}
	return fakeServer{Ifindex: ifindex, Family: fam, Address: a.AsSlice(), Port: port}
}

func (f *fakeResolved) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := fmt.Sprintf(format, args...)
	if _, err := os.Stat(f.journal); err != nil {
		call += " (no journal)"
	}
	f.calls = append(f.calls, call)
}

func (f *fakeResolved) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeResolved) SetLinkDNS(idx int32, servers []resolvedServer) *dbus.Error {
	var s []string
	for _, srv := range servers {
		a, _ := netip.AddrFromSlice(srv.Address)
		s = append(s, fmt.Sprintf("%d/%s", srv.Family, a))
	}
	f.record("SetLinkDNS %d %v", idx, s)
	return f.fails("SetLinkDNS")
}

func (f *fakeResolved) SetLinkDomains(idx int32, domains []resolvedDomain) *dbus.Error {
	f.record("SetLinkDomains %d %v", idx, domains)
	return f.fails("SetLinkDomains")
}

// fails is the error of method when it is to fail this time.
func (f *fakeResolved) fails(method string) *dbus.Error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOnce != method {
		return nil
	}
	f.failOnce = ""
	return dbus.MakeFailedError(fmt.Errorf("%s failed", method))
}

func (f *fakeResolved) SetLinkDefaultRoute(idx int32, on bool) *dbus.Error {
	if f.old {
		return dbus.NewError("org.freedesktop.DBus.Error.UnknownMethod", []any{"no such method"})
	}
	f.record("SetLinkDefaultRoute %d %v", idx, on)
	return nil
}

func (f *fakeResolved) SetLinkDNSOverTLS(idx int32, mode string) *dbus.Error {
	if f.old {
		return dbus.NewError("org.freedesktop.DBus.Error.UnknownMethod", []any{"no such method"})
	}
	f.record("SetLinkDNSOverTLS %d %s", idx, mode)
	return nil
}

func (f *fakeResolved) SetLinkLLMNR(idx int32, mode string) *dbus.Error {
	f.record("SetLinkLLMNR %d %s", idx, mode)
	return nil
}

func (f *fakeResolved) SetLinkMulticastDNS(idx int32, mode string) *dbus.Error {
	f.record("SetLinkMulticastDNS %d %s", idx, mode)
	return nil
}

func (f *fakeResolved) SetLinkDNSSEC(idx int32, mode string) *dbus.Error {
	f.record("SetLinkDNSSEC %d %s", idx, mode)
	return nil
}

func (f *fakeResolved) RevertLink(idx int32) *dbus.Error {
	f.record("RevertLink %d", idx)
	return nil
}

func (f *fakeResolved) FlushCaches() *dbus.Error {
	f.record("FlushCaches")
	return nil
}

func (f *fakeResolved) GetLink(idx int32) (dbus.ObjectPath, *dbus.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.defaultRoute[idx]; !ok {
		return "", dbus.MakeFailedError(fmt.Errorf("no link %d", idx))
	}
	return linkPath(idx), nil
}

func linkPath(idx int32) dbus.ObjectPath {
	return dbus.ObjectPath(fmt.Sprintf("%s/link/_3%d", resolvedPath, idx))
}

// fakeProps serves org.freedesktop.DBus.Properties.Get for one object.
type fakeProps struct {
	f    *fakeResolved
	link int32 // 0: the Manager
}

func (p fakeProps) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	switch {
	case p.link != 0 && iface == resolvedLinkIface && name == "DefaultRoute":
		return dbus.MakeVariant(p.f.defaultRoute[p.link]), nil
	case p.link == 0 && iface == resolvedManager && name == "DNSEx" && !p.f.noDNSEx:
		return dbus.MakeVariant(p.f.dnsEx), nil
	case p.link == 0 && iface == resolvedManager && name == "FallbackDNSEx":
		return dbus.MakeVariant(p.f.fallback), nil
	case p.link == 0 && iface == resolvedManager && name == "DNS":
		type plain struct {
			Ifindex, Family int32
			Address         []byte
		}
		var out []plain
		for _, s := range p.f.dnsEx {
			out = append(out, plain{s.Ifindex, s.Family, s.Address})
		}
		return dbus.MakeVariant(out), nil
	}
	return dbus.Variant{}, dbus.MakeFailedError(fmt.Errorf("no property %s.%s", iface, name))
}

// serveFakeResolved exports f on the bus at addr under resolved's name, on a
// connection of its own that it returns.
func serveFakeResolved(t *testing.T, addr string, f *fakeResolved) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(conn.Export(f, resolvedPath, resolvedManager))
	must(conn.Export(fakeProps{f: f}, resolvedPath, "org.freedesktop.DBus.Properties"))
	for idx := range f.defaultRoute {
		must(conn.Export(fakeProps{f: f, link: idx}, linkPath(idx), "org.freedesktop.DBus.Properties"))
	}
	reply, err := conn.RequestName(resolvedBusName, dbus.NameFlagDoNotQueue)
	must(err)
	if reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: reply %v", reply)
	}
	return conn
}

// resolvedSystem is a temp directory with /etc/resolv.conf a symlink to a
// systemd-resolved stub file, and a state directory.
func resolvedSystem(t *testing.T) (resolvConf, stateDir string) {
	dir := t.TempDir()
	stub := filepath.Join(dir, "run", "systemd", "resolve", "stub-resolv.conf")
	if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, stub, "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\nnameserver 127.0.0.53\noptions edns0 trust-ad\n", 0o644)
	resolvConf = filepath.Join(dir, "resolv.conf")
	if err := os.Symlink("run/systemd/resolve/stub-resolv.conf", resolvConf); err != nil {
		t.Fatal(err)
	}
	return resolvConf, filepath.Join(dir, "state")
}

func dialer(addr string) func() (*dbus.Conn, error) {
	return func() (*dbus.Conn, error) { return dbus.Connect(addr) }
}

func TestResolvedSetRestore(t *testing.T) {
	// Registered first, so it runs after the bus and the fake are closed.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	addr := startTestBus(t)
	resolvConf, stateDir := resolvedSystem(t)
	f := &fakeResolved{
		journal: filepath.Join(stateDir, resolvedJournalName),
		dnsEx: []fakeServer{
			server(0, "192.0.2.1", 0), server(0, "127.0.0.53", 53),
			server(7, "198.51.100.7", 5353), server(7, "2001:db8::7", 0), // default-route link
			server(8, "10.8.8.8", 0), // another VPN's link, routing domains only
			server(0, "192.0.2.1", 53),
		},
		defaultRoute: map[int32]bool{7: true, 8: false},
	}
	serveFakeResolved(t, addr, f)
	before := readState(t, resolvConf)

	d, err := newLinuxDNS(resolvConf, stateDir, zaptest.NewLogger(t), dialer(addr))
	if err != nil {
		t.Fatal(err)
	}
	if d.Mode() != "systemd-resolved" {
		t.Fatalf("mode %q, want systemd-resolved", d.Mode())
	}
	up, err := d.Upstreams()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53"), netip.MustParseAddrPort("198.51.100.7:5353"),
		netip.MustParseAddrPort("[2001:db8::7]:53")}
	if !slices.Equal(up, want) {
		t.Errorf("Upstreams = %v, want %v", up, want)
	}
	f.takeCalls()

	cfg := DNSConfig{Servers: []netip.Addr{netip.MustParseAddr("100.64.0.53")}, Interface: "lo",
		Domains: []string{"corp.example", "~Apps.Example."}, Search: []string{"corp.example"}}
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "SetLinkDNS 1 [2/100.64.0.53]", "SetLinkDomains 1 [~apps.example corp.example]",
		"SetLinkDefaultRoute 1 false", "SetLinkLLMNR 1 no", "SetLinkMulticastDNS 1 no", "SetLinkDNSSEC 1 no",
		"SetLinkDNSOverTLS 1 no", "FlushCaches")
	if _, err := os.Stat(f.journal); err != nil {
		t.Fatalf("journal after Set: %v", err)
	}
	if err := d.Restore(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "RevertLink 1")
	if _, err := os.Stat(f.journal); !os.IsNotExist(err) {
		t.Errorf("journal after Restore: %v, want none", err)
	}
	if err := d.Restore(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f)
	if after := readState(t, resolvConf); !after.equal(before) {
		t.Errorf("resolv.conf changed in systemd-resolved mode: %+v -> %+v", before, after)
	}
}

// wantCalls checks the calls made since the last check, each of which must
// have found the journal already written.
func wantCalls(t *testing.T, f *fakeResolved, want ...string) {
	t.Helper()
	if got := f.takeCalls(); !slices.Equal(got, want) {
		t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestResolvedEveryName(t *testing.T) {
	addr := startTestBus(t)
	resolvConf, stateDir := resolvedSystem(t)
	f := &fakeResolved{journal: filepath.Join(stateDir, resolvedJournalName), noDNSEx: true,
		dnsEx: []fakeServer{server(0, "192.0.2.1", 0)}}
	serveFakeResolved(t, addr, f)
	d, err := newLinuxDNS(resolvConf, stateDir, zaptest.NewLogger(t), dialer(addr))
	if err != nil {
		t.Fatal(err)
	}
	if up, err := d.Upstreams(); err != nil || !slices.Equal(up, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53")}) {
		t.Errorf("Upstreams (DNS property only) = %v, %v", up, err)
	}
	f.takeCalls()
	cfg := DNSConfig{Servers: []netip.Addr{netip.MustParseAddr("fd7a::53"), netip.MustParseAddr("100.64.0.53")}, Interface: "lo"}
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "SetLinkDNS 1 [10/fd7a::53 2/100.64.0.53]", "SetLinkDomains 1 [~.]", "SetLinkDefaultRoute 1 true",
		"SetLinkLLMNR 1 no", "SetLinkMulticastDNS 1 no", "SetLinkDNSSEC 1 no", "SetLinkDNSOverTLS 1 no", "FlushCaches")
	if err := d.Set(DNSConfig{Servers: cfg.Servers}); err == nil {
		t.Error("Set without Interface succeeded in systemd-resolved mode")
	}
	if err := d.Set(DNSConfig{Servers: cfg.Servers, Interface: "ztnosuch0"}); err == nil {
		t.Error("Set on a missing link succeeded")
	}
	if err := d.Restore(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "RevertLink 1")
}

func TestResolvedCrashRepair(t *testing.T) {
	addr := startTestBus(t)
	resolvConf, stateDir := resolvedSystem(t)
	f := &fakeResolved{journal: filepath.Join(stateDir, resolvedJournalName)}
	serveFakeResolved(t, addr, f)
	log := zaptest.NewLogger(t)
	d, err := newLinuxDNS(resolvConf, stateDir, log, dialer(addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Set(DNSConfig{Servers: []netip.Addr{netip.MustParseAddr("100.64.0.53")}, Interface: "lo"}); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()
	// The agent dies here; the next start reverts the link it left.
	if _, err := newLinuxDNS(resolvConf, stateDir, log, dialer(addr)); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "RevertLink 1")
	if _, err := os.Stat(f.journal); !os.IsNotExist(err) {
		t.Errorf("journal after repair: %v, want none", err)
	}

	for name, entry := range map[string]resolvedJournal{
		"link gone":               {Version: 1, Intent: "set", Interface: "ztgone0", Index: 99999},
		"index is another device": {Version: 1, Intent: "set", Interface: "ztgone0", Index: 1},
	} {
		t.Run(name, func(t *testing.T) {
			j, _ := newJournal(stateDir, resolvedJournalName)
			if err := j.write(entry); err != nil {
				t.Fatal(err)
			}
			if _, err := newLinuxDNS(resolvConf, stateDir, log, dialer(addr)); err != nil {
				t.Fatal(err)
			}
			wantCalls(t, f)
			if _, err := os.Stat(f.journal); !os.IsNotExist(err) {
				t.Errorf("journal after repair: %v, want none", err)
			}
		})
	}

	t.Run("no system bus", func(t *testing.T) {
		j, _ := newJournal(stateDir, resolvedJournalName)
		if err := j.write(resolvedJournal{Version: 1, Intent: "set", Interface: "lo", Index: 1}); err != nil {
			t.Fatal(err)
		}
		noBus := func() (*dbus.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ENOENT)}
		}
		d, err := newLinuxDNS(resolvConf, stateDir, log, noBus)
		if err != nil {
			t.Fatal(err)
		}
		if d.Mode() != "resolv.conf" {
			t.Errorf("mode %q without a bus, want resolv.conf", d.Mode())
		}
		if _, err := os.Stat(f.journal); !os.IsNotExist(err) {
			t.Errorf("journal after repair: %v, want none", err)
		}
	})
}

// TestResolvedRepairKeepsJournalUntilReverted: the journal of a crashed run
// goes only once nothing is left to revert. A bus that refuses the agent
// (out of descriptors) says nothing about resolved: the start fails with the
// journal kept, and the next start reverts the link. No resolved on the bus
// is a resolved that holds nothing.
func TestResolvedRepairKeepsJournalUntilReverted(t *testing.T) {
	addr := startTestBus(t)
	resolvConf, stateDir := resolvedSystem(t)
	f := &fakeResolved{journal: filepath.Join(stateDir, resolvedJournalName)}
	serveFakeResolved(t, addr, f)
	log := zaptest.NewLogger(t)
	entry := resolvedJournal{Version: 1, Intent: "set", Interface: "lo", Index: 1}
	j, _ := newJournal(stateDir, resolvedJournalName)
	if err := j.write(entry); err != nil {
		t.Fatal(err)
	}
	refused := func() (*dbus.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("socket", syscall.EMFILE)}
	}
	if _, err := newLinuxDNS(resolvConf, stateDir, log, refused); err == nil {
		t.Fatal("start succeeded without reverting the link or reaching the bus")
	}
	if _, err := os.Stat(f.journal); err != nil {
		t.Fatalf("journal after a failed repair: %v, want it kept", err)
	}
	if _, err := newLinuxDNS(resolvConf, stateDir, log, dialer(addr)); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "RevertLink 1")
	if _, err := os.Stat(f.journal); !os.IsNotExist(err) {
		t.Errorf("journal after the repair: %v, want none", err)
	}

	empty := startTestBus(t) // a bus without resolved
	if err := j.write(entry); err != nil {
		t.Fatal(err)
	}
	if _, err := newLinuxDNS(resolvConf, stateDir, log, dialer(empty)); err != nil {
		t.Fatalf("start with no resolved on the bus: %v", err)
	}
	if _, err := os.Stat(f.journal); !os.IsNotExist(err) {
		t.Errorf("journal with no resolved on the bus: %v, want none", err)
	}
}

// TestResolvedFailedSetKeepsIntent: when resolved fails part-way through a
// Set, the configurator still knows the link and the configuration it was
// setting: a resync (resolved restarted) applies that configuration, not an
// empty one that would send every name to a link without servers, and
// Restore reverts the link.
func TestResolvedFailedSetKeepsIntent(t *testing.T) {
	addr := startTestBus(t)
	resolvConf, stateDir := resolvedSystem(t)
	f := &fakeResolved{journal: filepath.Join(stateDir, resolvedJournalName), failOnce: "SetLinkDomains"}
	serveFakeResolved(t, addr, f)
	d, err := newLinuxDNS(resolvConf, stateDir, zaptest.NewLogger(t), dialer(addr))
	if err != nil {
		t.Fatal(err)
	}
	rd, ok := d.(*resolvedDNS)
	if !ok {
		t.Fatalf("mode %q, want systemd-resolved", d.Mode())
	}
	if err := d.Set(DNSConfig{Servers: agentV4, Domains: []string{"corp.example"}, Interface: "lo"}); err == nil {
		t.Fatal("Set succeeded though SetLinkDomains failed")
	}
	f.takeCalls()
	rd.resync()
	wantCalls(t, f, "SetLinkDNS 1 [2/100.64.0.53]", "SetLinkDomains 1 [~corp.example]", "SetLinkDefaultRoute 1 false",
		"SetLinkLLMNR 1 no", "SetLinkMulticastDNS 1 no", "SetLinkDNSSEC 1 no", "SetLinkDNSOverTLS 1 no")
	if up, err := d.Upstreams(); err != nil || slices.Contains(up, netip.AddrPortFrom(agentV4[0], 53)) {
		t.Errorf("Upstreams = %v, %v: must not include the agent", up, err)
	}
	if err := d.Restore(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "RevertLink 1")
}

func TestLinuxDNSModeSelection(t *testing.T) {
	addr := startTestBus(t) // no resolved on it
	log := zaptest.NewLogger(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.conf")
	writeTestFile(t, plain, "nameserver 192.0.2.1\n", 0o644)
	stubNoResolved, _ := resolvedSystem(t)
	uplink := filepath.Join(dir, "uplink.conf")
	os.MkdirAll(filepath.Join(dir, "run/systemd/resolve"), 0o755)
	writeTestFile(t, filepath.Join(dir, "run/systemd/resolve/resolv.conf"), "nameserver 192.0.2.1\n", 0o644)
	if err := os.Symlink("run/systemd/resolve/resolv.conf", uplink); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"regular file": plain, "stub, resolved absent": stubNoResolved, "uplink symlink": uplink} {
		t.Run(name, func(t *testing.T) {
			d, err := newLinuxDNS(path, t.TempDir(), log, dialer(addr))
			if err != nil {
				t.Fatal(err)
			}
			if d.Mode() != "resolv.conf" {
				t.Errorf("mode %q, want resolv.conf", d.Mode())
			}
		})
	}
	for target, want := range map[string]bool{
		"../run/systemd/resolve/stub-resolv.conf": true,
		"/usr/lib/systemd/resolv.conf":            true,
		"/run/systemd/resolve/resolv.conf":        false,
		"/run/NetworkManager/resolv.conf":         false,
	} {
		link := filepath.Join(t.TempDir(), "resolv.conf")
		os.Symlink(target, link)
		if got := isResolvedStub(link); got != want {
			t.Errorf("isResolvedStub(-> %s) = %v, want %v", target, got, want)
		}
	}
}

func TestCompileResolvedLink(t *testing.T) {
	v4 := netip.MustParseAddr("100.64.0.53")
	tests := []struct {
		name    string
		cfg     DNSConfig
		domains string
		dr      bool
	}{
		{"every name", DNSConfig{Servers: []netip.Addr{v4}}, "[~.]", true},
		{"every name with search", DNSConfig{Servers: []netip.Addr{v4}, Search: []string{"Corp.Example."}}, "[~. corp.example]", true},
		{"routing domains", DNSConfig{Servers: []netip.Addr{v4}, Domains: []string{"corp.example", "b.example", "corp.example."}}, "[~corp.example ~b.example]", false},
		{"search domain also routed", DNSConfig{Servers: []netip.Addr{v4}, Domains: []string{"a.example", "b.example"}, Search: []string{"b.example"}}, "[~a.example b.example]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := compileResolvedLink(tt.cfg)
			if got := fmt.Sprint(l.Domains); got != tt.domains || l.DefaultRoute != tt.dr {
				t.Errorf("domains %s default route %v, want %s %v", got, l.DefaultRoute, tt.domains, tt.dr)
			}
			if len(l.Servers) != 1 || l.Servers[0].Family != 2 || !slices.Equal(l.Servers[0].Address, v4.AsSlice()) {
				t.Errorf("servers %+v", l.Servers)
			}
		})
	}
}

// A restarted resolved has forgotten the link: the agent configures it again.
func TestResolvedRestartReapplies(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	addr := startTestBus(t)
	resolvConf, stateDir := resolvedSystem(t)
	f := &fakeResolved{journal: filepath.Join(stateDir, resolvedJournalName)}
	first := serveFakeResolved(t, addr, f)
	d, err := newLinuxDNS(resolvConf, stateDir, zaptest.NewLogger(t), dialer(addr))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DNSConfig{Servers: agentV4, Domains: []string{"corp.example"}, Interface: "lo"}
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	applied := f.takeCalls()
	if _, err := first.ReleaseName(resolvedBusName); err != nil {
		t.Fatal(err)
	}
	serveFakeResolved(t, addr, f) // resolved is back, under a new owner
	var again []string
	for range 200 { // the resync is asynchronous: wait for it, up to 10 s
		f.mu.Lock()
		n := len(f.calls)
		f.mu.Unlock()
		if n >= len(applied)-1 { // all but FlushCaches, which Set alone sends
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	again = f.takeCalls()
	if want := applied[:len(applied)-1]; !slices.Equal(again, want) {
		t.Errorf("after the restart:\n  %s\nwant:\n  %s", strings.Join(again, "\n  "), strings.Join(want, "\n  "))
	}
	if err := d.Restore(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "RevertLink 1")
}

// Before systemd 240 there is no SetLinkDefaultRoute or DNS-over-TLS: the
// link is still configured.
func TestResolvedOld(t *testing.T) {
	addr := startTestBus(t)
	resolvConf, stateDir := resolvedSystem(t)
	f := &fakeResolved{journal: filepath.Join(stateDir, resolvedJournalName), old: true}
	serveFakeResolved(t, addr, f)
	d, err := newLinuxDNS(resolvConf, stateDir, zaptest.NewLogger(t), dialer(addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Set(DNSConfig{Servers: agentV4, Domains: []string{"corp.example"}, Interface: "lo"}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, "SetLinkDNS 1 [2/100.64.0.53]", "SetLinkDomains 1 [~corp.example]", "SetLinkLLMNR 1 no",
		"SetLinkMulticastDNS 1 no", "SetLinkDNSSEC 1 no", "FlushCaches")
	if err := d.Restore(); err != nil {
		t.Fatal(err)
	}
}

// With no DNS server configured, resolved uses its fallback servers, and so
// does the agent.
func TestResolvedFallbackUpstreams(t *testing.T) {
	addr := startTestBus(t)
	resolvConf, stateDir := resolvedSystem(t)
	f := &fakeResolved{journal: filepath.Join(stateDir, resolvedJournalName),
		dnsEx:    []fakeServer{server(0, "127.0.0.53", 0)},
		fallback: []fakeServer{server(0, "9.9.9.9", 0), server(0, "2620:fe::fe", 853)}}
	serveFakeResolved(t, addr, f)
	d, err := newLinuxDNS(resolvConf, stateDir, zaptest.NewLogger(t), dialer(addr))
	if err != nil {
		t.Fatal(err)
	}
	up, err := d.Upstreams()
	want := []netip.AddrPort{netip.MustParseAddrPort("9.9.9.9:53"), netip.MustParseAddrPort("[2620:fe::fe]:853")}
	if err != nil || !slices.Equal(up, want) {
		t.Errorf("Upstreams = %v, %v; want %v", up, err, want)
	}
}
