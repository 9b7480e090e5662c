package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/dnsproxy"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l7"
	"github.com/ztagent/ztagent/tunnel/netstack"
)

// parts is what one start builds and its teardown undoes. A restart builds
// new parts and swaps them in whole; the data path's handlers belong to one
// parts value and never see another's. Only the supervisor builds and tears
// down parts; fields written after bring-up are atomic or carry their own
// lock, named beside them.
type parts struct {
	a    *Agent
	log  *zap.Logger
	gen  uint64
	who  principal       // whom this start runs as
	reqs chan<- request  // the supervisor's queue
	ctx  context.Context // cancelled first at teardown; every goroutine in wg ends with it
	stop context.CancelFunc
	wg   sync.WaitGroup
	// closers is the teardown stack, run in reverse; only the supervisor
	// touches it (at bring-up and teardown).
	closers []closer

	// ident is the device identity and its config client; the supervisor
	// swaps it when the certificate is renewed.
	ident atomic.Pointer[identity]
	// enrolledWith fingerprints the settings the identity was enrolled with
	// (see pendingSettings); read-only after bring-up.
	enrolledWith map[string]string
	lastAuth     atomic.Int64 // last sign-in, unix nanoseconds
	prompting    atomic.Bool  // a re-authentication sign-in is open in the browser

	// snap is the snapshot in force; tenantSnap the tenant's, which differs
	// while an administrator has turned steering off (steeringSwitch).
	snap       atomic.Pointer[steering.Snapshot]
	tenantSnap atomic.Pointer[steering.Snapshot]
	// applyMu orders applied(): the sync loop and `ztdiag -t` both call it.
	applyMu   sync.Mutex
	synced    atomic.Pointer[syncState]
	syncNow   chan chan error // the control API asks syncLoop for a sync
	stubs     *stubPools
	stubDirty chan struct{}

	tun       tun.Device // created first (createTUN); the stack's from startTUN on
	tunName   string
	tunIP     netip.Addr
	routes    routeState
	dnsCfg    platform.DNSConfigurator
	dns       *dnsproxy.Server
	upstreams atomic.Pointer[[]netip.AddrPort] // the OS's own resolvers; written by maintain
	stack     *netstack.Stack
	l7        *l7.Client
	sel       selector            // publisher selection by RTT
	netmon    platform.NetMonitor // nil without one (see startNetMonitor)
	// netChanged asks maintain to read the OS's resolvers again (a network
	// change or a wake).
	netChanged chan struct{}
	pub        pubAddrs
	// bypassCache holds recent pinned-app decisions per DNS client socket
	// (netip.AddrPort → bypassEntry); a concurrent map, no lock of ours.
	bypassCache sync.Map
	flows       flowCounters
	echo        echoer // ICMP echo through the tunnel, started with it
	onprem      *onPremDetector
	captive     *captiveDetector
	// stubChoice is the stub range chosen at start (see chooseStubRange);
	// read-only after bring-up.
	stubChoice stubChoice
	l3e        *l3ePart   // nil unless client.dtls; read-only after bring-up
	dnsMu      sync.Mutex // orders setDNS calls
}

// routeState is the OS router; mu orders the route updates that config
// syncs, publisher DNS answers and the sweeper make from their goroutines,
// so the last Set reflects the latest state.
type routeState struct {
	mu     sync.Mutex
	router platform.Router
}

type closer struct {
	name string
	fn   func() error
}

// bringUp builds parts in dependency order, pushing each teardown on the
// stack as soon as the part exists; on error it tears down what it built.
// ctx bounds the start.
func (a *Agent) bringUp(ctx context.Context, r *run, gen uint64) (*parts, error) {
	p := &parts{a: a, log: a.log, gen: gen, reqs: r.reqs, syncNow: make(chan chan error), stubDirty: make(chan struct{}, 1),
		sel: selector{stale: make(chan struct{}, 1)}, netChanged: make(chan struct{}, 1)}
	p.ctx, p.stop = context.WithCancel(context.Background())
	probe := netProber{upstreams: p.upstreamList, timeout: probeTimeout}
	p.onprem = newOnPremDetector(probe.onPrem, a.log.Named("onprem"), p.onPremChanged)
	p.captive = newCaptiveDetector(probe.captive, a.log.Named("captive"), func() { p.l7.Reconnect("captive portal opened") })
	if err := p.up(ctx); err != nil {
		if terr := p.teardown(); terr != nil {
			a.log.Warn("teardown after a failed start", zap.Error(terr))
		}
		return nil, err
	}
	return p, nil
}

func (p *parts) up(ctx context.Context) error {
	if err := p.createTUN(); err != nil {
		return err
	}
	if err := p.loadOrEnroll(ctx); err != nil {
		return err
	}
	snap, err := p.initialConfig(ctx)
	if err != nil {
		return err
	}
	if snap, err = p.chooseStubRange(snap); err != nil {
		return fmt.Errorf("stub range: %w", err)
	}
	snap = p.a.steering.put(p, snap)
	if err := p.initStubs(snap); err != nil {
		return err
	}
	p.push("stub state", p.saveStubs)
	p.goWG(p.stubSaver)

	// Learn the OS resolvers before pointing the OS at ourselves.
	if p.dnsCfg, err = p.a.cfg.NewDNS(p.a.cfg.StateDir, p.log); err != nil {
		return fmt.Errorf("DNS configuration: %w", err)
	}
	upstreams, err := p.dnsCfg.Upstreams()
	if err != nil {
		return fmt.Errorf("read the system's DNS servers: %w", err)
	}
	noteUpstreams(upstreams)
	if err := p.startTUN(ctx, snap); err != nil {
		return err
	}
	if err := p.startTunnel(); err != nil {
		return err
	}
	p.startNetMonitor()
	if err := p.startDNS(upstreams); err != nil {
		return err
	}
	if err := p.dnsCfg.Set(p.dnsConfig()); err != nil {
		return fmt.Errorf("point the system resolver at ztagent (%s): %w", p.dnsCfg.Mode(), err)
	}
	p.push("system DNS", p.dnsCfg.Restore)
	if err := p.startL3E(); err != nil {
		return err
	}

	p.goWG(p.syncLoop)
	p.goWG(p.watchSessions)
	p.goWG(p.maintain)
	p.goWG(p.pubSweeper)
	p.goWG(p.selectLoop)
	p.goWG(p.watchNetwork)
	p.goWG(func(ctx context.Context) { p.onprem.run(ctx, p.onPremConfig) })
	p.goWG(func(ctx context.Context) { p.captive.run(ctx, p.captiveURL, p.tunnelUp) })
	return nil
}

// goWG runs fn on a goroutine that teardown waits for; fn returns when
// p.ctx ends.
func (p *parts) goWG(fn func(ctx context.Context)) {
	p.wg.Go(func() { fn(p.ctx) })
}

func (p *parts) push(name string, fn func() error) {
	p.closers = append(p.closers, closer{name, fn})
}

// teardown stops the goroutines, then runs the closers in reverse order of
// bring-up: the system resolver is restored first, so the OS stops sending
// queries to a proxy that is about to go; then the DNS proxy, the pings in
// flight (which end with ctx), the tunnel, the userspace stack with the TUN
// device (whose routes the kernel drops with it), what routes remain, and the
// stub state (saved last, after the last flow).
func (p *parts) teardown() error {
	p.stop()
	p.wg.Wait()
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		c := p.closers[i]
		if err := c.fn(); err != nil {
			p.log.Warn("teardown", zap.String("part", c.name), zap.Error(err))
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	p.closers = nil
	return errors.Join(errs...)
}

// createTUN creates the TUN device, first of all the parts, with the MTU of
// the --mtu flag or fallbackTUNMTU; startTUN sets the MTU that follows the
// uplink, once the config names the PoP. First, because wireguard/tun
// allocates its offload tables (~1.9 MB: TCP and UDP GRO for 128-packet
// batches) when it opens the device: made before the enrollment's and the
// config's megabytes, they sit in memory the process has never used, which
// the Go runtime hands out without clearing, and stay out of the RSS until
// traffic fills them. Made after, they reuse freed heap that the runtime
// clears, and an idle agent keeps 1.9 MB of zeros resident (measured with
// 10,000 apps: 13–16 MB anonymous RSS before, 11 MB after). Until the
// userspace stack owns the device, the teardown closes it.
func (p *parts) createTUN() error {
	cfg := &p.a.cfg
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = fallbackTUNMTU
	}
	dev, err := cfg.NewTUN(cfg.TUNName, mtu)
	if err != nil {
		return err
	}
	p.tun = dev
	p.tunName = cfg.TUNName
	if name, err := dev.Name(); err == nil {
		p.tunName = name
	}
	p.push("TUN device", func() error {
		if p.stack != nil {
			return nil // the stack closed it
		}
		return dev.Close()
	})
	return nil
}

// startTUN sets the TUN device's MTU, addresses and routes it, and starts
// the userspace stack on it. The stack owns the device from then on and
// closes it (closing is the only way to interrupt a blocked read).
func (p *parts) startTUN(ctx context.Context, snap *steering.Snapshot) error {
	cfg := &p.a.cfg
	mtu := p.tunMTU(ctx)
	if cur, err := p.tun.MTU(); err != nil || cur != mtu {
		if err := cfg.SetTUNMTU(p.tun, mtu); err != nil {
			return err
		}
	}
	p.tunIP = agentAddr(snap.StubRange())
	router, err := cfg.NewRouter(cfg.StateDir, p.log)
	if err != nil {
		return err
	}
	if err := p.setFirstRoutes(router, snap); err != nil {
		router.Close()
		return err
	}
	p.routes.router = router
	p.push("routes", router.Close)

	stack, err := netstack.New(p.tun, netstack.Config{
		MTU:  mtu,
		Log:  p.log,
		TCP:  p.handleTCP,
		UDP:  p.handleUDP,
		Echo: p.handleEcho,
		// Changed by apply with the config.
		IdleUDP: snap.Client().UDPIdleTimeout.D(),
	})
	if err != nil {
		return fmt.Errorf("userspace network stack: %w", err)
	}
	p.stack = stack
	p.push("userspace stack and TUN device", p.stack.Close)
	p.a.capture.attach(p.stack)
	return nil
}

// setFirstRoutes addresses and routes the TUN device. An OS that refuses
// the IPv6 stub range's address or route (IPv6 switched off) gets the rest
// without it: the IPv6 stub pool goes, and private names get no AAAA answer,
// as without an IPv6 stub range.
func (p *parts) setFirstRoutes(router platform.Router, snap *steering.Snapshot) error {
	err := router.Set(p.routerConfig(snap))
	if err == nil || p.stubs.v6 == nil {
		return err
	}
	p.log.Warn("the OS refused the IPv6 stub range; private names get no AAAA answer",
		zap.Stringer("stub_range6", p.stubs.v6.Prefix()), zap.Error(err))
	p.stubs.v6 = nil
	return router.Set(p.routerConfig(snap))
}

func (p *parts) routerConfig(snap *steering.Snapshot) platform.RouterConfig {
	addrs := []netip.Prefix{netip.PrefixFrom(p.tunIP, p.tunIP.BitLen())}
	routes := []netip.Prefix{snap.StubRange()}
	if v6 := p.stubs.v6; v6 != nil {
		a6 := agentAddr(v6.Prefix())
		addrs = append(addrs, netip.PrefixFrom(a6, a6.BitLen()))
		routes = append(routes, v6.Prefix())
	}
	if !p.onprem.onPrem() {
		// On premises app prefixes are reached direct.
		routes = append(routes, snap.Prefixes()...)
		routes = append(routes, p.pub.prefixes()...)
	}
	return platform.RouterConfig{
		Interface: p.tunName,
		Addrs:     addrs,
		Routes:    routes,
	}
}

// updateRoutes applies the routes for the current snapshot and publisher
// addresses.
func (p *parts) updateRoutes() {
	p.routes.mu.Lock()
	defer p.routes.mu.Unlock()
	if err := p.routes.router.Set(p.routerConfig(p.snap.Load())); err != nil {
		p.log.Warn("update routes", zap.Error(err))
	}
}

func (p *parts) startTunnel() error {
	sc := p.synced.Load()
	tlsConf, err := p.ident.Load().id.TLSConfig(sc.cfg.PoP.ServerName)
	if err != nil {
		return err
	}
	// Always present the current certificate, so a renewal takes effect at
	// the next connection without rebuilding the tunnel.
	tlsConf.Certificates = nil
	tlsConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &p.ident.Load().id.Cert, nil
	}
	var pops []l7.PoP
	for _, pp := range sc.cfg.DialList() {
		pops = append(pops, l7.PoP{Addr: pp.Address, ServerName: pp.ServerName})
	}
	p.l7 = l7.NewClient(l7.ClientConfig{
		PoPs: pops,
		TLS:  tlsConf,
		Log:  p.log,
		// The PoP may sit inside an app prefix: never tunnel the tunnel.
		Dial: p.dialPoP,
	})
	p.l7.Start()
	p.push("L7 tunnel", p.l7.Close)
	p.echo.start(p.l7)
	p.push("ICMP echo", p.echo.close)
	return nil
}

func (p *parts) startDNS(upstreams []netip.AddrPort) error {
	listen := p.a.cfg.DNSListen
	if listen == "" {
		listen = net.JoinHostPort(p.tunIP.String(), "53")
	}
	srv, err := dnsproxy.New(dnsproxy.Config{
		Listen:    []string{listen},
		Upstreams: upstreams,
		Policy:    dnsPolicy{p},
		Bypass:    p.bypassDNS,
		Log:       p.log,
	})
	if err != nil {
		return fmt.Errorf("DNS proxy: %w", err)
	}
	if err := srv.Start(); err != nil {
		return err
	}
	p.dns = srv
	p.upstreams.Store(&upstreams)
	p.push("DNS proxy", srv.Close)
	return nil
}

// upstreamList returns the OS's own resolvers (none before the DNS proxy
// started).
func (p *parts) upstreamList() []netip.AddrPort {
	if ups := p.upstreams.Load(); ups != nil {
		return *ups
	}
	return nil
}

func (p *parts) dnsConfig() platform.DNSConfig {
	domains := privateDomains(p.snap.Load().Apps())
	if s := p.l3eSuffix(); s != "" {
		domains = append(domains, s)
	}
	return platform.DNSConfig{
		Servers:   []netip.Addr{p.tunIP},
		Domains:   domains,
		Interface: p.tunName,
	}
}
