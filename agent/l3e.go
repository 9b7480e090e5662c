package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/dnsproxy/ddns"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/tunnel/l3e"
)

// l3ePart is the L3E tunnel of one start (client.dtls with a gateway named
// by the tenant): a second TUN, its own router (journalled in the state
// directory's l3e/), and the client that dials the gateway and pumps packets.
// The client owns the TUN; the template it receives sets the TUN's address
// and routes, and the corporate suffix's DNS (dnsPolicy asks l3eResolver).
type l3ePart struct {
	client  *l3e.Client
	tunName string
	tmpl    atomic.Pointer[l3e.Template]
	// mu orders the router updates of successive templates, and guards
	// the name registration.
	mu     sync.Mutex
	router platform.Router
	cancel context.CancelFunc
	done   chan struct{}
	// name is the device's registration in corporate DNS (the template's
	// ddns block); nil when there is none. unnamed: the tunnel is being
	// closed, no template registers a name any more.
	name    *nameReg
	unnamed bool
	named   atomic.Pointer[nameReg] // name, for the status (which never waits on mu)
}

// nameReg is one RFC 2136 registration, kept by ddns.Client.Run until
// cancel: the name and address of one template.
type nameReg struct {
	client *ddns.Client
	cfg    ddns.Config
	addr   netip.Addr
	cancel context.CancelFunc
	done   chan struct{}
}

// startL3E brings the L3E tunnel up when the config asks for it. The
// gateway being unreachable is not an error: the client retries with backoff
// while L7 works.
func (p *parts) startL3E() error {
	sc := p.synced.Load()
	gw := sc.cfg.Gateway
	if !p.snap.Load().Client().DTLS {
		return nil
	}
	if gw == nil {
		p.log.Warn("client.dtls is set but the tenant names no L3E gateway; L3E stays off")
		return nil
	}
	cfg := &p.a.cfg
	dir := filepath.Join(cfg.StateDir, "l3e")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("L3E state: %w", err)
	}
	router, err := cfg.NewRouter(dir, p.log.Named("l3e"))
	if err != nil {
		return err
	}
	dev, err := cfg.NewTUN(cfg.L3ETUNName, l3e.DefaultMTU)
	if err != nil {
		router.Close()
		return fmt.Errorf("L3E TUN: %w", err)
	}
	lp := &l3ePart{router: router, tunName: cfg.L3ETUNName, done: make(chan struct{})}
	if name, err := dev.Name(); err == nil {
		lp.tunName = name
	}
	p.push("L3E routes", router.Close)
	lp.client, err = l3e.NewClient(l3e.ClientConfig{
		Gateway: gw.Address, ServerName: gw.ServerName, RootCAs: p.ident.Load().id.Roots,
		GetCertificate: func() (*tls.Certificate, error) { return &p.ident.Load().id.Cert, nil },
		TUN:            dev,
		OnTemplate:     func(t *l3e.Template) { p.onL3ETemplate(lp, t) },
		// The gateway may sit inside an app prefix: never tunnel the tunnel.
		Dial: platform.DialBypass,
		Log:  p.log.Named("l3e"),
	})
	if err != nil {
		dev.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	lp.cancel = cancel
	go func() { // owned by lp: its closer waits for it
		defer close(lp.done)
		lp.client.Run(ctx)
	}()
	p.l3e = lp
	// Before the routes go: the client says bye and closes its TUN.
	p.push("L3E tunnel", func() error {
		cancel()
		<-lp.done
		return nil
	})
	// Before that, while the tunnel is up: the name is removed from the
	// corporate DNS (the update goes through the tunnel).
	p.push("L3E DNS name", func() error {
		lp.mu.Lock()
		defer lp.mu.Unlock()
		lp.unnamed = true
		lp.stopNaming()
		return nil
	})
	return nil
}

// onL3ETemplate applies a template: the TUN's address and routes, then the
// OS resolver's routing domains with the corporate suffix.
func (p *parts) onL3ETemplate(lp *l3ePart, t *l3e.Template) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	a := t.Address.Addr()
	rc := platform.RouterConfig{Interface: lp.tunName, Addrs: []netip.Prefix{netip.PrefixFrom(a, a.BitLen())},
		Routes: []netip.Prefix{t.Address.Masked()}}
	for _, r := range t.Routes {
		if !slices.Contains(rc.Routes, r.Prefix) {
			rc.Routes = append(rc.Routes, r.Prefix)
		}
	}
	if err := lp.router.Set(rc); err != nil {
		p.log.Error("L3E routes", zap.Error(err))
		return
	}
	lp.tmpl.Store(t)
	p.nameDevice(lp, t)
	p.log.Info("L3E template applied", zap.Stringer("address", t.Address), zap.Int("routes", len(t.Routes)),
		zap.String("suffix", t.Suffix))
	if err := p.setDNS(); err != nil {
		p.log.Warn("L3E: point the corporate suffix at ztagent", zap.Error(err))
	}
}

// nameDevice keeps the device's name registered in the corporate DNS as the
// template says (its ddns block): <host name>.<suffix> → the VPN address,
// signed with the template's TSIG key and owned by the device ID, so that no
// other device's name is touched. A template with the same name and address
// (a reconnect) leaves the registration running; a changed one replaces it;
// one without a ddns block removes it. Called with lp.mu held.
func (p *parts) nameDevice(lp *l3ePart, t *l3e.Template) {
	if lp.unnamed {
		return
	}
	d := t.DDNS
	if d == nil {
		lp.stopNaming()
		return
	}
	suffix := t.Suffix
	if suffix == "" {
		suffix = d.Zone
	}
	name, err := ddns.HostName(suffix)
	if err != nil {
		p.log.Warn("L3E: no name to register in the corporate DNS", zap.Error(err))
		lp.stopNaming()
		return
	}
	cfg := ddns.Config{Server: d.Server, Zone: d.Zone, Name: name, KeyName: d.KeyName, Algorithm: d.Algorithm,
		Secret: ddns.Secret(d.Secret), Owner: p.ident.Load().id.DeviceID, TTL: time.Duration(d.TTL) * time.Second}
	addr := t.Address.Addr()
	if r := lp.name; r != nil && r.cfg == cfg && r.addr == addr {
		return
	}
	lp.stopNaming()
	c, err := ddns.New(cfg, p.log.Named("ddns"))
	if err != nil {
		p.log.Warn("L3E: the template's dynamic DNS settings cannot be used", zap.Error(err))
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &nameReg{client: c, cfg: cfg, addr: addr, cancel: cancel, done: make(chan struct{})}
	go func() { // owned by lp: stopNaming waits for it
		defer close(r.done)
		c.Run(ctx, []netip.Addr{addr}) // logs its own failures
	}()
	lp.name = r
	lp.named.Store(r)
}

// stopNaming ends the registration, removing the name (Run bounds that to a
// few seconds). Called with lp.mu held.
func (lp *l3ePart) stopNaming() {
	if r := lp.name; r != nil {
		lp.named.Store(nil)
		r.cancel()
		<-r.done
		lp.name = nil
	}
}

// setDNS points the OS resolver at the agent for the current apps and L3E
// suffix. Config syncs and L3E templates call it from their goroutines: the
// lock makes the last Set reflect the latest of both.
func (p *parts) setDNS() error {
	p.dnsMu.Lock()
	defer p.dnsMu.Unlock()
	return p.dnsCfg.Set(p.dnsConfig())
}

// l3eSuffix returns the corporate suffix the L3E template names, "" without one.
func (p *parts) l3eSuffix() string {
	if p.l3e == nil {
		return ""
	}
	if t := p.l3e.tmpl.Load(); t != nil {
		return strings.TrimSuffix(strings.ToLower(t.Suffix), ".")
	}
	return ""
}

// l3eOwns reports whether name (lower case, no final dot) lies under the L3E
// corporate suffix while the tunnel is up.
func (p *parts) l3eOwns(name string) bool {
	s := p.l3eSuffix()
	return s != "" && (name == s || strings.HasSuffix(name, "."+s)) && p.l3e.client.Status().State == l3e.StateUp
}

// l3eResolver sends queries to the corporate DNS servers the template
// names; the OS routes them into the L3E TUN.
type l3eResolver struct{ lp *l3ePart }

func (r l3eResolver) Exchange(ctx context.Context, query []byte) ([]byte, error) {
	t := r.lp.tmpl.Load()
	if t == nil || len(t.DNS) == 0 {
		return nil, fmt.Errorf("L3E: no corporate DNS server")
	}
	var last error
	for _, s := range t.DNS {
		resp, err := exchangeUDP(ctx, netip.AddrPortFrom(s, 53), query)
		if err == nil {
			return resp, nil
		}
		last = err
	}
	return nil, last
}

func exchangeUDP(ctx context.Context, server netip.AddrPort, query []byte) ([]byte, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "udp", server.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("corporate DNS %s: %w", server, err)
	}
	return buf[:n], nil
}

// l3eStatus is the L3E part of `ztdiag status`; nil when L3E is off.
func (p *parts) l3eStatus() *ctlapi.L3EStatus {
	if p.l3e == nil {
		return nil
	}
	s := p.l3e.client.Status()
	st := &ctlapi.L3EStatus{State: s.State, Gateway: s.Gateway, Since: s.Since, LastError: s.LastError,
		TUN: p.l3e.tunName, Address: s.Address, MTU: s.MTU, DNS: s.DNS, Suffix: s.Suffix,
		PacketsIn: s.PacketsIn, PacketsOut: s.PacketsOut, BytesIn: s.BytesIn, BytesOut: s.BytesOut,
		Rekeys: s.Rekeys, Losses: s.Losses, TemplatesRefused: s.TemplatesRefused, Drops: s.Drops,
		Truncated: s.Truncated, Replayed: s.Replayed, Forged: s.Forged, WrongEpoch: s.WrongEpoch}
	for _, r := range s.Routes {
		st.Routes = append(st.Routes, ctlapi.L3ERoute{App: r.App, Prefix: r.Prefix, TCP: r.TCP, UDP: r.UDP, ICMP: r.ICMP})
	}
	if r := p.l3e.named.Load(); r != nil {
		state := "registering (see the log)"
		if r.client.Registered() {
			state = "registered"
		}
		st.DDNS = r.cfg.Name + " → " + r.addr.String() + " at " + r.cfg.Server + ": " + state
	}
	return st
}
