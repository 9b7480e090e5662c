// Package agent is the daemon's core: it wires enrollment, the steering engine,
// the DNS proxy, the TUN device and userspace stack, and the L7 tunnel into one
// lifecycle, persists what must survive a restart (identity, last good config,
// stub assignments), serves the local control API that ztdiag talks to, and
// keeps the config in sync with the tenant.
//
// Lifecycle. Start launches one supervisor goroutine, which makes every
// transition until Close ends it; the state lock (Agent.mu) guards only what a
// transition changes and is never held across one. The parts that a start
// builds (identity, config, stub pool, TUN device and stack, routes, DNS,
// L7 client, and the goroutines that keep them current) live in one parts
// value, swapped whole at each restart.
//
//	          Start              ok                   grace period over
//	stopped ────────▶ starting ──────▶ running ──────────────────────▶ suspended
//	 ▲   ▲              │   ▲             │                                │
//	 │   └── error ─────┘   │ restart     │ restart request:               │ sign-in, or
//	 │  (a first start      │             │ re-enrollment, login switch    │ no longer due
//	 │   fails; a failed    │             ▼                                │
//	 │   restart is retried)└────────── stopping ◀─────────────────────────┘
//	 │                                    │
//	 └─────────────── Close ──────────────┘  (Close reaches stopping from any state)
//
// A restart request (a re-enrollment by `ztdiag -e`, a login or logout that
// switches identity, a successful re-authentication sign-in, or the end of a
// suspension) goes to the supervisor on a channel; it stops the parts
// (running → stopping), builds new ones (→ starting) and swaps them in
// (→ running). A restart that fails leaves the agent stopped with the error in
// its status and is retried with backoff. Suspended is running with private
// access off: the re-authentication grace period ended without a sign-in,
// the L7 tunnel is closed and steered flows are refused until the user signs
// in. A new enrollment (re-enrollment or sign-in) is saved by the supervisor
// before anyone is told it succeeded, so a restart or a Close that races it
// cannot drop it: the next start uses it.
//
// Close cancels what is in flight (a start, an enrollment in a control-API
// handler), waits for the supervisor, which tears the parts down in the
// reverse order of bring-up (see parts.teardown), then stops the control API
// and waits for every handler; it returns after every goroutine the agent
// owns has exited.
package agent

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
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
	// Control bounds the control API's clients; zero fields take defaults.
	Control ControlLimits
	TUNName string
	// MTU is the TUN device's MTU; 0 follows the uplink to the PoP.
	MTU int
	// L3ETUNName is the L3E tunnel's TUN (default the platform's, see
	// platform.DefaultL3ETUNName).
	L3ETUNName string
	// DNSListen is where the DNS proxy listens; default the agent's TUN
	// address, port 53.
	DNSListen string
	Log       *zap.Logger
	// Logs changes the log's level and file size while the agent runs
	// (`ztdiag -l`, `-m`) and names its files (the bundle's recent logs);
	// nil: neither can change, and the bundle has no logs.
	Logs LogControl
	// Version is the agent's version, for the diagnostics bundle.
	Version string

	// Enroller enrolls the device and renews its certificate; nil means the
	// tenant API (package enroll). Tests pass a fake (agent/agenttest).
	Enroller Enroller
	// NewConfigSource returns the client that fetches the config for an
	// identity; nil means the tenant API's (enroll.ConfigClient).
	NewConfigSource func(id *enroll.Identity, log *zap.Logger) (ConfigSource, error)

	// OS hooks; nil means the real platform implementation.
	NewTUN func(name string, mtu int) (tun.Device, error)
	// SetTUNMTU changes the MTU of a device NewTUN made. With NewTUN set and
	// this nil, the TUN's MTU cannot change and a start that needs another
	// fails.
	SetTUNMTU func(dev tun.Device, mtu int) error
	// UplinkMTU returns the MTU of the uplink to a host:port.
	UplinkMTU func(ctx context.Context, address string) (int, error)
	NewRouter func(stateDir string, log *zap.Logger) (platform.Router, error)
	NewDNS    func(stateDir string, log *zap.Logger) (platform.DNSConfigurator, error)
	// NewNetMonitor reports network changes outside the interfaces in
	// ignore (the agent's TUN device).
	NewNetMonitor func(ignore []string, log *zap.Logger) (platform.NetMonitor, error)
	// RouteOwner names another interface routing a prefix (another VPN
	// owning the stub range); nil means the OS's routing table.
	RouteOwner func(p netip.Prefix, exclude string) (string, error)
}

// Agent is the daemon. Create it with New, then Start and Close.
//
// Locks, each beside the data it guards and none held across a lifecycle
// step or taken in one goroutine and released in another: Agent.mu (the
// lifecycle state and the parts in force), settingsState.mu (install
// parameters and effective settings, written by MDM polls and a saved
// re-enrollment), routeState.mu (orders route updates from config syncs,
// publisher DNS answers and the sweeper), pubAddrs.mu (the publisher-resolved
// address table; the data path reads an atomic view). What the data path
// reads per flow or query is atomic (snapshot, identity, upstreams) or a
// concurrent map (the pinned-app bypass cache).
type Agent struct {
	cfg      Config
	log      *zap.Logger
	mdm      *platform.MDMPoller
	settings settingsState      // the install parameters and effective settings; its own lock
	steering steeringSwitch     // `ztdiag -t`: steering turned off by an administrator; its own lock
	capture  captureState       // `ztdiag -c`: the TUN capture; its own lock
	uplink   uplinkCaptureState // `ztdiag -p`: the uplink capture; its own lock

	// mu is the state lock: it guards the fields below, and is held only to
	// read or change them, never across a lifecycle step.
	mu    sync.Mutex
	state ctlapi.State
	since time.Time
	why   string    // why the agent is not running as it should (a failed restart) or is suspended
	parts *parts    // what the last start built; nil unless running, suspended or stopping
	run   *run      // from Start until Close has finished; nil when stopped
	gen   uint64    // generation of the last parts built, to drop stale requests
	who   principal // whom the last parts ran as: kept when sessions cannot be read
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
	if cfg.L3ETUNName == "" {
		cfg.L3ETUNName = platform.DefaultL3ETUNName()
	}
	if cfg.NewTUN == nil {
		cfg.NewTUN, cfg.SetTUNMTU = platform.CreateTUN, platform.SetTUNMTU
	}
	if cfg.SetTUNMTU == nil {
		cfg.SetTUNMTU = func(_ tun.Device, mtu int) error {
			return fmt.Errorf("set the TUN's MTU to %d: Config.NewTUN has no Config.SetTUNMTU", mtu)
		}
	}
	if cfg.UplinkMTU == nil {
		cfg.UplinkMTU = platform.UplinkMTU
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
	if cfg.NewNetMonitor == nil {
		cfg.NewNetMonitor = platform.NewNetMonitor
	}
	if cfg.RouteOwner == nil {
		cfg.RouteOwner = platform.RouteOwner
	}
	if cfg.Enroller == nil {
		cfg.Enroller = TenantEnroller{Log: cfg.Log}
	}
	if cfg.NewConfigSource == nil {
		cfg.NewConfigSource = newTenantConfigSource
	}
	a := &Agent{cfg: cfg, log: cfg.Log, state: ctlapi.StateStopped, since: time.Now(),
		mdm: platform.NewMDMPoller(cfg.MDM)}
	a.settings.install = cfg.Params
	a.steering.onExpire = a.steeringExpired
	a.steering.load(cfg.StateDir, cfg.Log)
	return a
}

// ErrNotStopped is returned by Start when the agent is already started.
var ErrNotStopped = errors.New("agent is not stopped")

// Start brings the agent up: the control API, then the parts. It returns once
// the first start has succeeded or failed; on error nothing it did is left
// behind. ctx bounds the first start only.
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	if a.run != nil {
		a.mu.Unlock()
		return ErrNotStopped
	}
	r := newRun()
	a.run = r
	a.setStateLocked(ctlapi.StateStarting, "")
	a.mu.Unlock()
	a.steering.arm()
	started := make(chan error, 1)
	go a.supervise(ctx, r, started) // r.done closes when it exits; Close waits for it
	return <-started
}

// Close stops the agent. It is idempotent, and every call returns after the
// agent has stopped and every goroutine it started, control-API handlers
// included, has exited.
func (a *Agent) Close() error {
	a.mu.Lock()
	r := a.run
	a.mu.Unlock()
	if r == nil {
		return nil
	}
	r.cancel()
	<-r.done
	return r.err
}

// State returns where the agent is in its lifecycle.
func (a *Agent) State() ctlapi.State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

func (a *Agent) setStateLocked(s ctlapi.State, why string) {
	if a.state != s {
		a.since = time.Now()
	}
	a.state, a.why = s, why
}

func (a *Agent) setState(s ctlapi.State, why string) {
	a.mu.Lock()
	a.setStateLocked(s, why)
	a.mu.Unlock()
}

// current returns the parts in force and the state, or nil when there are none.
func (a *Agent) current() (*parts, ctlapi.State) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.parts, a.state
}

// lastPrincipal is whom the agent last ran as (zero before the first start).
func (a *Agent) lastPrincipal() principal {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.who
}

// agentAddr is the agent's own address on the TUN device, where the DNS proxy
// listens: the first host address of the stub range.
func agentAddr(stub netip.Prefix) netip.Addr {
	return stub.Masked().Addr().Next()
}

// privateDomains are the routing domains that cover every private name of apps:
// an exact name routes itself, a wildcard "*.corp.example" routes
// corp.example. Resolvers with routing domains (systemd-resolved, macOS,
// NRPT) then send only these names to the agent; a domain already covered by a
// shorter one is left out.
func privateDomains(apps iter.Seq2[int, steering.App]) []string {
	set := map[string]bool{}
	for _, app := range apps {
		for _, h := range app.Hosts {
			// Exact names and wildcards (whose Name is the domain); addresses
			// have no domain.
			if host, err := steering.ParseHost(h); err == nil && host.Kind.IsName() {
				set[host.Name] = true
			}
		}
	}
	out := make([]string, 0, len(set)) // kept with the DNS config: no growth slack
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
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	return out
}
