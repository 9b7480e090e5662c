// Package agent is the daemon's core: it wires enrollment, the steering engine,
// the DNS proxy, the TUN device and userspace stack, and the L7 tunnel into one
// lifecycle, persists what must survive a restart (identity, last good config,
// stub assignments), serves the local control API that ztdiag talks to, and
// keeps the config in sync with the tenant.
//
// Lifecycle is an explicit state machine guarded by one mutex:
//
//	stopped → starting → running → stopping → stopped
//	             └──(error)──────────┘
//
// Start brings the parts up in dependency order and, if any step fails, tears
// down what it did and returns one error naming the cause; Close tears down in
// the reverse order (see teardown) and returns after every goroutine the agent
// owns has exited.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ztagent/ztagent/dnsproxy"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l7"
	"github.com/ztagent/ztagent/tunnel/netstack"
)

// Config is how the agent is set up on this machine.
type Config struct {
	// Params are the install parameters; MDM-pushed settings override them.
	Params enroll.Params
	// Sessions lists login sessions, for pre-logon and per-user identities;
	// nil means the OS's own (logind/utmp, the console owner, WTS).
	Sessions platform.SessionSource
	// SessionPoll is how often sessions are checked; default 5s.
	SessionPoll time.Duration
	// Owners finds the process that owns a flow, for pinned-app exceptions;
	// nil means the OS's own lookup.
	Owners platform.OwnerLookup
	// OpenBrowser shows the tenant's sign-in page (IdP enrollment and
	// re-authentication); nil means the OS's default browser.
	OpenBrowser func(url string) error
	// MDM is the MDM-pushed settings source; nil means the OS's own
	// (/etc/ztagent/mdm.json, managed preferences, policy registry key).
	MDM        platform.MDMSource
	StateDir   string
	SocketPath string
	TUNName    string
	MTU        int
	// DNSListen is where the DNS proxy listens; default the agent's TUN
	// address, port 53.
	DNSListen string
	Log       *zap.Logger

	// OS hooks; nil means the real platform implementation.
	NewTUN    func(name string, mtu int) (tun.Device, error)
	NewRouter func(*zap.Logger) (platform.Router, error)
	NewDNS    func(stateDir string, log *zap.Logger) (platform.DNSConfigurator, error)
}

// State is where the agent is in its lifecycle.
type State string

// The agent's states.
const (
	StateStopped  State = "stopped"
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateStopping State = "stopping"
)

// Agent is the daemon. Create it with New, then Start and Close.
type Agent struct {
	cfg Config
	log *zap.Logger

	// lifeMu serialises Start, Close and re-enrollment's restart; mu guards
	// the state below and is never held across a lifecycle step.
	lifeMu  sync.Mutex
	mu      sync.Mutex
	state   State
	since   time.Time
	closers []closer // teardown stack, run in reverse

	// The device identity and its config client; swapped whole when the
	// certificate is renewed.
	ident atomic.Pointer[identity]

	// Set during Start, read-only afterwards (until Close).
	stubs  *steering.StubPool
	tunIP  netip.Addr
	router platform.Router
	dnsCfg platform.DNSConfigurator
	dns    *dnsproxy.Server
	// upstreams are the resolvers the OS had before the agent took over.
	upMu      sync.Mutex
	upstreams []netip.AddrPort
	stack     *netstack.Stack
	l7        *l7.Client

	stubDirty chan struct{}

	flows flowCounters
	// principal is whom the agent runs as; set by start, read by the session
	// watcher (which runs only while started).
	who       atomic.Pointer[principal]
	switching atomic.Bool
	reauth    reauthState
	// bypassCache holds recent pinned-app decisions per DNS client socket.
	bypassCache sync.Map // netip.AddrPort → bypassEntry
	mdm         *platform.MDMPoller
	eff         settingsState // effective settings
	pub         pubAddrs      // publisher-resolved addresses, routed while in use
	// routerMu orders route updates from config syncs and publisher DNS.
	routerMu sync.Mutex

	snap   atomic.Pointer[steering.Snapshot]
	synced atomic.Pointer[syncState]

	// runCtx lives from Start to Close; every goroutine in wg ends with it.
	runCtx context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type closer struct {
	name string
	fn   func() error
}

// New returns an agent that is not started.
func New(cfg Config) *Agent {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.StateDir == "" {
		cfg.StateDir = platform.DefaultStateDir()
	}
	if cfg.SocketPath == "" {
		cfg.SocketPath = platform.DefaultSocketPath()
	}
	if cfg.TUNName == "" {
		cfg.TUNName = platform.DefaultTUNName()
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1420
	}
	if cfg.NewTUN == nil {
		cfg.NewTUN = platform.CreateTUN
	}
	if cfg.NewRouter == nil {
		cfg.NewRouter = platform.NewRouter
	}
	if cfg.Sessions == nil {
		cfg.Sessions = platform.NewSessionSource()
	}
	if cfg.SessionPoll == 0 {
		cfg.SessionPoll = 5 * time.Second
	}
	if cfg.Owners == nil {
		cfg.Owners = platform.NewOwnerLookup(cfg.Log)
	}
	if cfg.OpenBrowser == nil {
		cfg.OpenBrowser = platform.OpenBrowser
	}
	if cfg.MDM == nil {
		cfg.MDM = platform.NewMDMSource()
	}
	if cfg.NewDNS == nil {
		cfg.NewDNS = platform.NewDNSConfigurator
	}
	return &Agent{cfg: cfg, log: cfg.Log, state: StateStopped, since: time.Now(), stubDirty: make(chan struct{}, 1),
		mdm: platform.NewMDMPoller(cfg.MDM)}
}

// ErrNotStopped is returned by Start when the agent is already running.
var ErrNotStopped = errors.New("agent is not stopped")

// Start brings the agent up. On error nothing it did is left behind.
func (a *Agent) Start(ctx context.Context) error {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	return a.startLocked(ctx)
}

func (a *Agent) startLocked(ctx context.Context) error {
	a.mu.Lock()
	if a.state != StateStopped {
		a.mu.Unlock()
		return ErrNotStopped
	}
	a.setStateLocked(StateStarting)
	a.mu.Unlock()

	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel, a.runCtx = cancel, runCtx
	if err := a.bringUp(ctx, runCtx); err != nil {
		a.teardown()
		return err
	}
	a.mu.Lock()
	a.setStateLocked(StateRunning)
	a.mu.Unlock()
	id := a.ident.Load().id
	a.log.Info("agent running", zap.String("tenant", id.Tenant), zap.String("user", id.User),
		zap.String("tun", a.cfg.TUNName), zap.Stringer("dns", a.tunIP))
	return nil
}

// bringUp starts each part in dependency order, pushing its teardown on the
// stack as soon as it exists. ctx bounds the start; runCtx lives until Close.
func (a *Agent) bringUp(ctx, runCtx context.Context) error {
	// The control socket first: it fails fast when another agent is running,
	// before this one touches anything.
	ctl, err := a.startControl()
	if err != nil {
		return err
	}
	a.push("control API", ctl)

	if err := a.loadOrEnroll(ctx); err != nil {
		return err
	}
	snap, err := a.initialConfig(ctx)
	if err != nil {
		return err
	}
	a.snap.Store(snap)
	if err := a.initStubs(snap); err != nil {
		return err
	}
	a.push("stub state", a.saveStubs)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.stubSaver(runCtx)
	}()

	// Learn the OS resolvers before pointing the OS at ourselves.
	if a.dnsCfg, err = a.cfg.NewDNS(a.cfg.StateDir, a.log); err != nil {
		return fmt.Errorf("DNS configuration: %w", err)
	}
	upstreams, err := a.dnsCfg.Upstreams()
	if err != nil {
		return fmt.Errorf("read the system's DNS servers: %w", err)
	}

	if err := a.startTUN(snap); err != nil {
		return err
	}
	if err := a.startTunnel(runCtx); err != nil {
		return err
	}
	if err := a.startDNS(snap, upstreams); err != nil {
		return err
	}
	if err := a.dnsCfg.Set(a.dnsConfig()); err != nil {
		return fmt.Errorf("point the system resolver at ztagent (%s): %w", a.dnsCfg.Mode(), err)
	}
	a.push("system DNS", a.dnsCfg.Restore)

	a.wg.Add(4)
	go func() {
		defer a.wg.Done()
		a.syncLoop(runCtx)
	}()
	go func() {
		defer a.wg.Done()
		a.watchSessions(runCtx)
	}()
	go func() {
		defer a.wg.Done()
		a.maintain(runCtx)
	}()
	go func() {
		defer a.wg.Done()
		a.pubSweeper(runCtx)
	}()
	return nil
}

func (a *Agent) push(name string, fn func() error) {
	a.mu.Lock()
	a.closers = append(a.closers, closer{name, fn})
	a.mu.Unlock()
}

func (a *Agent) setStateLocked(s State) {
	a.state = s
	a.since = time.Now()
}

// Close stops the agent. It is idempotent and returns after every goroutine
// the agent started has exited.
func (a *Agent) Close() error {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	return a.closeLocked()
}

// restartLocked stops the agent, runs prepare (which may change what the
// next start uses; nil for none) and starts it again. lifeMu is held. It does
// nothing when the agent was stopped meanwhile. The agent's own restarts
// (re-enrollment, a login, a re-authentication) run it in a goroutine outside
// the agent's group, which the restart stops.
func (a *Agent) restartLocked(why string, prepare func()) {
	if a.Status().State != StateRunning {
		return
	}
	a.closeLocked()
	if prepare != nil {
		prepare()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := a.startLocked(ctx); err != nil {
		a.log.Error("restart failed", zap.String("why", why), zap.Error(err))
	}
}

func (a *Agent) closeLocked() error {
	a.mu.Lock()
	if a.state != StateRunning {
		a.mu.Unlock()
		return nil
	}
	a.setStateLocked(StateStopping)
	a.mu.Unlock()
	err := a.teardown()
	a.log.Info("agent stopped")
	return err
}

// teardown runs the closers in reverse order of bring-up: the system resolver
// is restored first, so the OS stops sending queries to a proxy that is about
// to go; then the DNS proxy, the tunnel, the userspace stack with the TUN
// device (whose routes the kernel drops with it), what routes remain, the stub
// state (saved last, after the last flow), and the control socket.
func (a *Agent) teardown() error {
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	a.mu.Lock()
	cs := a.closers
	a.closers = nil
	a.mu.Unlock()
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		if err := cs[i].fn(); err != nil {
			a.log.Warn("teardown", zap.String("part", cs[i].name), zap.Error(err))
			errs = append(errs, fmt.Errorf("%s: %w", cs[i].name, err))
		}
	}
	a.mu.Lock()
	a.setStateLocked(StateStopped)
	a.mu.Unlock()
	return errors.Join(errs...)
}

// agentAddr is the agent's own address on the TUN device, where the DNS proxy
// listens: the first host address of the stub range.
func agentAddr(stub netip.Prefix) netip.Addr {
	return stub.Masked().Addr().Next()
}

// startTUN creates the TUN device, addresses and routes it, and starts the
// userspace stack on it. The stack owns the device from then on and closes it
// (closing is the only way to interrupt a blocked read); until then, every
// failure closes it here.
func (a *Agent) startTUN(snap *steering.Snapshot) (err error) {
	dev, err := a.cfg.NewTUN(a.cfg.TUNName, a.cfg.MTU)
	if err != nil {
		return err
	}
	owned := false
	defer func() {
		if !owned {
			dev.Close()
		}
	}()
	if name, err := dev.Name(); err == nil {
		a.cfg.TUNName = name
	}
	a.tunIP = agentAddr(snap.StubRange())
	if a.router, err = a.cfg.NewRouter(a.log); err != nil {
		return err
	}
	if err := a.router.Set(a.routerConfig(snap)); err != nil {
		a.router.Close()
		return err
	}
	a.push("routes", a.router.Close)

	a.stack, err = netstack.New(dev, netstack.Config{
		MTU: a.cfg.MTU,
		Log: a.log,
		TCP: a.handleTCP,
	})
	if err != nil {
		return fmt.Errorf("userspace network stack: %w", err)
	}
	owned = true
	a.push("userspace stack and TUN device", a.stack.Close)
	return nil
}

func (a *Agent) routerConfig(snap *steering.Snapshot) platform.RouterConfig {
	bits := 32
	if a.tunIP.Is6() {
		bits = 128
	}
	routes := append([]netip.Prefix{snap.StubRange()}, snap.Prefixes()...)
	routes = append(routes, a.pub.prefixes()...)
	return platform.RouterConfig{
		Interface: a.cfg.TUNName,
		Addrs:     []netip.Prefix{netip.PrefixFrom(a.tunIP, bits)},
		Routes:    routes,
	}
}

func (a *Agent) startTunnel(runCtx context.Context) error {
	sc := a.synced.Load()
	tlsConf, err := a.ident.Load().id.TLSConfig(sc.cfg.PoP.ServerName)
	if err != nil {
		return err
	}
	// Always present the current certificate, so a renewal takes effect at
	// the next connection without rebuilding the tunnel.
	tlsConf.Certificates = nil
	tlsConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &a.ident.Load().id.Cert, nil
	}
	a.l7 = l7.NewClient(l7.ClientConfig{
		Addr: sc.cfg.PoP.Address,
		TLS:  tlsConf,
		Log:  a.log,
		// The PoP may sit inside an app prefix: never tunnel the tunnel.
		Dial: platform.DialBypass,
	})
	a.l7.Start()
	a.push("L7 tunnel", a.l7.Close)
	return nil
}

func (a *Agent) startDNS(snap *steering.Snapshot, upstreams []netip.AddrPort) error {
	listen := a.cfg.DNSListen
	if listen == "" {
		listen = net.JoinHostPort(a.tunIP.String(), "53")
	}
	srv, err := dnsproxy.New(dnsproxy.Config{
		Listen:    []string{listen},
		Upstreams: upstreams,
		Policy:    dnsPolicy{a},
		Bypass:    a.bypassDNS,
		Log:       a.log,
	})
	if err != nil {
		return fmt.Errorf("DNS proxy: %w", err)
	}
	if err := srv.Start(); err != nil {
		return err
	}
	a.dns = srv
	a.upstreams = upstreams
	a.push("DNS proxy", srv.Close)
	return nil
}

func (a *Agent) dnsConfig() platform.DNSConfig {
	return platform.DNSConfig{
		Servers:   []netip.Addr{a.tunIP},
		Domains:   privateDomains(a.snap.Load().Config()),
		Interface: a.cfg.TUNName,
	}
}

// privateDomains are the routing domains that cover every private name of cfg:
// an exact name routes itself, a wildcard "*.corp.example" routes
// corp.example. Resolvers with routing domains (systemd-resolved, macOS,
// NRPT) then send only these names to the agent; a domain already covered by a
// shorter one is left out.
func privateDomains(cfg *steering.Config) []string {
	set := map[string]bool{}
	for _, app := range cfg.Apps {
		for _, h := range app.Hosts {
			// Exact names and wildcards (whose Name is the domain); addresses
			// have no domain.
			if host, err := steering.ParseHost(h); err == nil && host.Kind.IsName() {
				set[host.Name] = true
			}
		}
	}
	var out []string
	for d := range set {
		covered := false
		for p := d; ; {
			i := strings.IndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[i+1:]
			if set[p] {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}
