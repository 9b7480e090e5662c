package platform

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"go.uber.org/zap"
)

// systemd-resolved's D-Bus API (org.freedesktop.resolve1(5)).
const (
	resolvedBusName   = "org.freedesktop.resolve1"
	resolvedPath      = dbus.ObjectPath("/org/freedesktop/resolve1")
	resolvedManager   = "org.freedesktop.resolve1.Manager"
	resolvedLinkIface = "org.freedesktop.resolve1.Link"

	// resolvedCallTimeout bounds every D-Bus call: a wedged resolved must
	// not hang the agent's start or stop.
	resolvedCallTimeout = 5 * time.Second
)

// resolvedJournalName is the journal's file name in the state directory.
const resolvedJournalName = "dns-resolved.journal"

// resolvedJournal records the link the agent configured in systemd-resolved.
// Per-link settings live only in resolved's memory, so undoing them is one
// RevertLink on that link, if it still exists and is still the same device.
type resolvedJournal struct {
	Version   int    `json:"version"`
	Intent    string `json:"intent"` // "set": the agent configures the link
	Interface string `json:"interface"`
	Index     int    `json:"index"`
	// What was set, for the administrator reading the journal.
	Servers      []string `json:"servers"`
	Domains      []string `json:"domains"`
	DefaultRoute bool     `json:"default_route"`
}

// resolvedServer is one (iay) of SetLinkDNS: address family and bytes.
type resolvedServer struct {
	Family  int32
	Address []byte
}

// resolvedDomain is one (sb) of SetLinkDomains: a domain and whether it only
// routes queries (resolvectl's "~domain") rather than also being searched.
type resolvedDomain struct {
	Domain      string
	RoutingOnly bool
}

// String is the domain as resolvectl shows it.
func (d resolvedDomain) String() string {
	if d.RoutingOnly {
		return "~" + d.Domain
	}
	return d.Domain
}

// resolvedLink is the per-link configuration for cfg: its servers; its
// routing domains (each of cfg.Domains, or "." — every name — when there are
// none) and search domains; and whether the link is a default route for
// names no routing domain claims, which it is only when it takes every name.
type resolvedLink struct {
	Servers      []resolvedServer
	Domains      []resolvedDomain
	DefaultRoute bool
}

func compileResolvedLink(cfg DNSConfig) resolvedLink {
	var l resolvedLink
	for _, a := range cfg.Servers {
		a = a.Unmap()
		fam := int32(2) // AF_INET
		if a.Is6() {
			fam = 10 // AF_INET6
		}
		l.Servers = append(l.Servers, resolvedServer{Family: fam, Address: a.AsSlice()})
	}
	search := make([]string, 0, len(cfg.Search))
	for _, s := range cfg.Search {
		if s = normalizeDomain(s); s != "." && !slices.Contains(search, s) {
			search = append(search, s)
		}
	}
	routing := []string{"."}
	if len(cfg.Domains) > 0 {
		routing = routing[:0]
		for _, d := range cfg.Domains {
			// A search domain routes too; listing it twice would be redundant.
			if d = normalizeDomain(d); !slices.Contains(routing, d) && !slices.Contains(search, d) {
				routing = append(routing, d)
			}
		}
	}
	for _, d := range routing {
		l.Domains = append(l.Domains, resolvedDomain{Domain: d, RoutingOnly: true})
	}
	for _, s := range search {
		l.Domains = append(l.Domains, resolvedDomain{Domain: s})
	}
	l.DefaultRoute = len(cfg.Domains) == 0
	return l
}

// resolvedDNS configures the agent's TUN link in systemd-resolved: its DNS
// server and routing domains, so that only the agent's names (or every name,
// with "~.") reach the agent while resolved keeps serving 127.0.0.53 and
// /etc/resolv.conf stays untouched. Each operation opens its own bus
// connection and closes it, so the configurator owns no goroutine between
// calls.
type resolvedDNS struct {
	dial    func() (*dbus.Conn, error)
	log     *zap.Logger
	journal journal
	ifindex func(name string) (int, error)

	mu    sync.Mutex
	link  *resolvedJournal // as journalled; non-nil while the agent may have configured a link
	cfg   DNSConfig        // what link was set to: the last Set that was journalled
	watch *resolvedWatch   // from the first Set to Restore
}

func newResolvedDNS(dial func() (*dbus.Conn, error), stateDir string, log *zap.Logger) (*resolvedDNS, error) {
	j, err := newJournal(stateDir, resolvedJournalName)
	if err != nil {
		return nil, err
	}
	return &resolvedDNS{dial: dial, log: log.Named("dns"), journal: j, ifindex: interfaceIndex}, nil
}

// interfaceIndex is the index of the network interface name.
func interfaceIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

// interfaceNameOf is the name of the interface with index idx, or "" when
// there is none.
func interfaceNameOf(idx int) string {
	ifi, err := net.InterfaceByIndex(idx)
	if err != nil {
		return ""
	}
	return ifi.Name
}

// Mode implements DNSConfigurator.
func (r *resolvedDNS) Mode() string { return "systemd-resolved" }

// Set implements DNSConfigurator. The journal names the link before resolved
// is told anything about it, and link and cfg follow the journal: if resolved
// then fails part-way, Restore reverts the link and a resync after a
// resolved restart applies cfg, never an older or empty configuration.
func (r *resolvedDNS) Set(cfg DNSConfig) error {
	if len(cfg.Servers) == 0 {
		return errors.New("systemd-resolved: no DNS servers to set")
	}
	if cfg.Interface == "" {
		return errors.New("systemd-resolved: DNSConfig.Interface is empty (resolved configures DNS per link)")
	}
	idx, err := r.ifindex(cfg.Interface)
	if err != nil {
		return fmt.Errorf("systemd-resolved: link %s: %w", cfg.Interface, err)
	}
	link := compileResolvedLink(cfg)
	conn, err := r.dial()
	if err != nil {
		return fmt.Errorf("systemd-resolved: %w", err)
	}
	defer conn.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.link != nil && r.link.Index != idx {
		// The agent moved to another device: put the old link back first.
		if err := r.revertLocked(conn, r.link); err != nil {
			return err
		}
	}
	entry := &resolvedJournal{Version: 1, Intent: "set", Interface: cfg.Interface, Index: idx,
		DefaultRoute: link.DefaultRoute}
	for _, s := range cfg.Servers {
		entry.Servers = append(entry.Servers, s.String())
	}
	for _, d := range link.Domains {
		entry.Domains = append(entry.Domains, d.String())
	}
	if err := r.journal.write(entry); err != nil {
		return err
	}
	r.link, r.cfg = entry, cfg
	if err := applyResolvedLink(conn, idx, link, r.log); err != nil {
		return fmt.Errorf("systemd-resolved: link %s (%d): %w", cfg.Interface, idx, err)
	}
	// Names cached before the link took them must not be answered from the
	// old servers; an old resolved without FlushCaches only delays that.
	if err := resolvedCall(conn, "FlushCaches"); err != nil {
		r.log.Debug("systemd-resolved: FlushCaches failed", zap.Error(err))
	}
	if r.watch == nil {
		if r.watch, err = startResolvedWatch(r.dial, r.resync, r.log); err != nil {
			r.log.Warn("cannot watch for systemd-resolved restarts; a restart will drop the agent's link settings",
				zap.Error(err))
		}
	}
	r.log.Info("configured systemd-resolved link", zap.String("link", cfg.Interface), zap.Int("index", idx),
		zap.Strings("domains", entry.Domains), zap.Bool("default_route", link.DefaultRoute))
	return nil
}

// resync configures the link again after resolved restarted.
func (r *resolvedDNS) resync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.link == nil {
		return
	}
	conn, err := r.dial()
	if err == nil {
		err = applyResolvedLink(conn, r.link.Index, compileResolvedLink(r.cfg), r.log)
		conn.Close()
	}
	if err != nil {
		r.log.Error("configuring the systemd-resolved link again failed", zap.Error(err))
	}
}

// applyResolvedLink sends the link's configuration: servers and domains
// (required); the default route (absent before systemd 240, whose links
// without routing domains are default routes anyway); and, best effort as
// in any resolved that supports them, LLMNR, multicast DNS, DNSSEC and
// DNS-over-TLS off: the agent answers none of the first two, synthesises
// unsigned answers for its names, and serves plain DNS only.
func applyResolvedLink(conn *dbus.Conn, idx int, link resolvedLink, log *zap.Logger) error {
	i := int32(idx)
	if err := resolvedCall(conn, "SetLinkDNS", i, link.Servers); err != nil {
		return err
	}
	if err := resolvedCall(conn, "SetLinkDomains", i, link.Domains); err != nil {
		return err
	}
	if err := resolvedCall(conn, "SetLinkDefaultRoute", i, link.DefaultRoute); err != nil {
		var derr dbus.Error
		if !errors.As(err, &derr) || derr.Name != "org.freedesktop.DBus.Error.UnknownMethod" {
			return err
		}
		log.Info("systemd-resolved has no SetLinkDefaultRoute (older than 240)")
	}
	for _, m := range []string{"SetLinkLLMNR", "SetLinkMulticastDNS", "SetLinkDNSSEC", "SetLinkDNSOverTLS"} {
		if err := resolvedCall(conn, m, i, "no"); err != nil {
			log.Info("systemd-resolved: optional link setting failed", zap.Error(err))
		}
	}
	return nil
}

func resolvedCall(conn *dbus.Conn, method string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), resolvedCallTimeout)
	defer cancel()
	call := conn.Object(resolvedBusName, resolvedPath).CallWithContext(ctx, resolvedManager+"."+method, 0, args...)
	if call.Err != nil {
		return fmt.Errorf("%s: %w", method, call.Err)
	}
	return nil
}

// Restore implements DNSConfigurator.
func (r *resolvedDNS) Restore() error {
	r.mu.Lock()
	w := r.watch
	r.watch = nil
	r.mu.Unlock()
	if w != nil {
		w.stop() // first, and unlocked: it may be re-applying the link
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.link == nil {
		return nil
	}
	conn, err := r.dial()
	if err != nil {
		return fmt.Errorf("systemd-resolved: %w (the link is recorded in %s)", err, r.journal.path)
	}
	defer conn.Close()
	return r.revertLocked(conn, r.link)
}

// revertLocked undoes link and clears the journal.
func (r *resolvedDNS) revertLocked(conn *dbus.Conn, link *resolvedJournal) error {
	if err := revertResolvedLink(conn, link, r.log); err != nil {
		return fmt.Errorf("systemd-resolved: %w (the link is recorded in %s)", err, r.journal.path)
	}
	if err := r.journal.clear(); err != nil {
		return err
	}
	r.link, r.cfg = nil, DNSConfig{}
	return nil
}

// revertResolvedLink drops everything set on the recorded link. A link that
// is gone (the TUN device disappears with the agent's process) took its
// settings with it; an index now naming another device is not ours to touch.
func revertResolvedLink(conn *dbus.Conn, link *resolvedJournal, log *zap.Logger) error {
	if linkGone(link, log) {
		return nil
	}
	if err := resolvedCall(conn, "RevertLink", int32(link.Index)); err != nil {
		return err
	}
	log.Info("reverted systemd-resolved link", zap.String("link", link.Interface), zap.Int("index", link.Index))
	return nil
}

// linkGone reports (and logs) that the recorded link no longer exists: its
// index names no device, or another one.
func linkGone(link *resolvedJournal, log *zap.Logger) bool {
	name := interfaceNameOf(link.Index)
	if name == link.Interface {
		return false
	}
	log.Info("systemd-resolved: link is gone; nothing to revert",
		zap.String("link", link.Interface), zap.Int("index", link.Index), zap.String("index_now", name))
	return true
}

// repairResolved reverts a link left configured by a run that did not stop
// cleanly. The journal goes only once nothing is left to revert: the link is
// gone, or reverted, or resolved is not running (no system bus, or no
// resolved on it), since a resolved that starts afresh holds no per-link
// settings. Any other failure (the agent out of descriptors, a bus that
// refuses it) keeps the journal and fails the start.
func repairResolved(dial func() (*dbus.Conn, error), stateDir string, log *zap.Logger) error {
	j, err := newJournal(stateDir, resolvedJournalName)
	if err != nil {
		return err
	}
	var link resolvedJournal
	ok, err := j.read(&link)
	if err != nil || !ok {
		return err
	}
	log.Warn("reverting the systemd-resolved link left by a previous run that did not stop cleanly",
		zap.String("link", link.Interface), zap.Int("index", link.Index))
	if linkGone(&link, log) {
		return j.clear()
	}
	conn, err := dial()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("repairing systemd-resolved from journal %s: %w", j.path, err)
		}
		log.Warn("the system bus is not running, so systemd-resolved holds no settings of the previous run",
			zap.Error(err))
		return j.clear()
	}
	defer conn.Close()
	if err := revertResolvedLink(conn, &link, log); err != nil {
		if !resolvedAbsent(err) {
			return fmt.Errorf("repairing systemd-resolved from journal %s: %w", j.path, err)
		}
		log.Warn("systemd-resolved is not running, so it holds no settings of the previous run", zap.Error(err))
	}
	return j.clear()
}

// resolvedAbsent reports whether err says that no one owns resolved's bus
// name.
func resolvedAbsent(err error) bool {
	var derr dbus.Error
	return errors.As(err, &derr) && (derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
		derr.Name == "org.freedesktop.DBus.Error.NameHasNoOwner")
}

// Upstreams implements DNSConfigurator: resolved's DNS servers, global and
// of every other link that takes names no routing domain claims, in
// resolved's order; the agent's own link and addresses, and resolved's own
// stub listeners, are left out so that the agent never forwards to itself.
func (r *resolvedDNS) Upstreams() ([]netip.AddrPort, error) {
	r.mu.Lock()
	own, exclude := -1, slices.Clone(r.cfg.Servers)
	if r.link != nil {
		own = r.link.Index
	}
	r.mu.Unlock()
	conn, err := r.dial()
	if err != nil {
		return nil, fmt.Errorf("systemd-resolved: %w", err)
	}
	defer conn.Close()
	servers, err := resolvedServers(conn, "DNS")
	if err != nil {
		return nil, fmt.Errorf("systemd-resolved: %w", err)
	}
	exclude = append(exclude, netip.MustParseAddr("127.0.0.53"), netip.MustParseAddr("127.0.0.54"))
	defaultRoute := map[int32]bool{}
	var out []netip.AddrPort
	for _, s := range servers {
		if int(s.ifindex) == own || slices.Contains(exclude, s.addr.Addr()) || slices.Contains(out, s.addr) {
			continue
		}
		if s.ifindex != 0 {
			dr, seen := defaultRoute[s.ifindex]
			if !seen {
				dr = linkIsDefaultRoute(conn, s.ifindex)
				defaultRoute[s.ifindex] = dr
			}
			if !dr {
				continue
			}
		}
		out = append(out, s.addr)
	}
	if len(out) == 0 {
		// resolved itself falls back to these when no server is configured.
		fallback, _ := resolvedServers(conn, "FallbackDNS")
		for _, s := range fallback {
			if !slices.Contains(exclude, s.addr.Addr()) && !slices.Contains(out, s.addr) {
				out = append(out, s.addr)
			}
		}
	}
	return out, nil
}

type resolvedUpstream struct {
	ifindex int32
	addr    netip.AddrPort
}

// resolvedServers reads the Manager's property prop+"Ex" (with ports), or
// prop on resolved older than 246; prop is "DNS" or "FallbackDNS".
func resolvedServers(conn *dbus.Conn, prop string) ([]resolvedUpstream, error) {
	var ex []struct {
		Ifindex int32
		Family  int32
		Address []byte
		Port    uint16
		Name    string
	}
	if v, err := resolvedProperty(conn, resolvedPath, resolvedManager, prop+"Ex"); err == nil && v.Store(&ex) == nil {
		var out []resolvedUpstream
		for _, s := range ex {
			if a, ok := netip.AddrFromSlice(s.Address); ok {
				out = append(out, resolvedUpstream{s.Ifindex, netip.AddrPortFrom(a.Unmap(), cmp0(s.Port, 53))})
			}
		}
		return out, nil
	}
	var plain []struct {
		Ifindex int32
		Family  int32
		Address []byte
	}
	v, err := resolvedProperty(conn, resolvedPath, resolvedManager, prop)
	if err == nil {
		err = v.Store(&plain)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s servers: %w", prop, err)
	}
	var out []resolvedUpstream
	for _, s := range plain {
		if a, ok := netip.AddrFromSlice(s.Address); ok {
			out = append(out, resolvedUpstream{s.Ifindex, netip.AddrPortFrom(a.Unmap(), 53)})
		}
	}
	return out, nil
}

func cmp0(port, def uint16) uint16 {
	if port == 0 {
		return def
	}
	return port
}

// linkIsDefaultRoute reports whether the link takes names no routing domain
// claims. When resolved cannot say (older than 240), the link's servers count.
func linkIsDefaultRoute(conn *dbus.Conn, ifindex int32) bool {
	ctx, cancel := context.WithTimeout(context.Background(), resolvedCallTimeout)
	defer cancel()
	var path dbus.ObjectPath
	err := conn.Object(resolvedBusName, resolvedPath).CallWithContext(ctx, resolvedManager+".GetLink", 0, ifindex).Store(&path)
	if err != nil {
		return true
	}
	v, err := resolvedProperty(conn, path, resolvedLinkIface, "DefaultRoute")
	if err != nil {
		return true
	}
	dr, ok := v.Value().(bool)
	return !ok || dr
}

// resolvedProperty reads one property of a resolved object, within the call
// timeout (godbus's GetProperty has none).
func resolvedProperty(conn *dbus.Conn, path dbus.ObjectPath, iface, name string) (dbus.Variant, error) {
	ctx, cancel := context.WithTimeout(context.Background(), resolvedCallTimeout)
	defer cancel()
	var v dbus.Variant
	err := conn.Object(resolvedBusName, path).CallWithContext(ctx,
		"org.freedesktop.DBus.Properties.Get", 0, iface, name).Store(&v)
	return v, err
}

// resolvedAnswers reports why systemd-resolved does not answer on conn, or nil
// when it does.
func resolvedAnswers(conn *dbus.Conn) error {
	_, err := resolvedProperty(conn, resolvedPath, resolvedManager, "DNS")
	return err
}
