// Package dnsproxy is the DNS server the operating system is pointed at. It
// answers the names of private applications itself (an A record with the
// name's stub address, empty NOERROR answers for the other types so that clients
// fall back to the stub, PTR for stub addresses), sends the names of
// publisher-DNS apps to the Upstream the policy names (a publisher, through
// the tunnel), and forwards every other query to the resolvers the system had
// before the agent took over, with a TTL-honouring cache. Which names are
// private is decided by a Policy that the agent swaps atomically when its
// configuration changes; the query path never takes a lock to read it.
//
// Forwarding is transparent: the upstream gets the client's query byte for
// byte but for the ID (EDNS options, versions and flags included, whether
// the agent knows them or not), and the client gets the upstream's answer
// byte for byte but for the ID. Over UDP, a truncated upstream answer is
// retried over TCP; the client gets the full answer if it fits its buffer,
// else the upstream's truncated one.
//
// The cache serves an answer only to a query the upstream would have been
// asked identically: the key is every byte of the query but its ID, the name
// folded to lower case (DNS names are case-insensitive; the client's case is
// put back in the question). So a query with another EDNS option (client
// subnet, cookie, NSID…), EDNS version, buffer size or flag (RD, CD, AD, the
// DO bit) is a different entry, and an answer that depends on any of them is
// never given for another. Queries with a TSIG or any record but an OPT in
// the additional section are not cached, nor are truncated answers, rcodes
// other than NOERROR and NXDOMAIN, and negative answers without a SOA (RFC
// 2308). A cached answer is the upstream's bytes with the new query's ID and
// question and TTLs aged by the time it was kept; an answer larger than the
// client's buffer is served from the cache only as the upstream's truncated
// one, if it sent one, and otherwise asked again.
package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Answer is how the agent answers a private name.
type Answer struct {
	// Addr is the name's stub address. An invalid Addr means the name is private
	// but has no address now (for example the stub range is exhausted); such
	// queries are answered SERVFAIL.
	Addr netip.Addr
	// Addr6, when valid, is the name's IPv6 stub address, the answer to
	// AAAA (and Addr that to A); invalid, AAAA gets no answer unless Addr
	// is itself IPv6.
	Addr6 netip.Addr
	// TTL of the answer; it is rounded down to whole seconds.
	TTL time.Duration
	// Upstream, when non-nil, resolves the name instead of a stub address
	// ("publisher DNS"): queries of every type for the name are sent to it
	// and its answer is returned as it is. Addr and TTL are then unused.
	Upstream Upstream
	// Local, when set (and Upstream nil), forwards the name's queries as
	// for a name the agent does not own, but only to the upstreams on the
	// local network (see LocalResolver), never to the others; with none,
	// the query is answered SERVFAIL. Addr and TTL are then unused. This is
	// fail mode "local": while the tunnel is down, a private name stays off
	// resolvers beyond the network the device sits on.
	Local bool
}

// Upstream resolves queries somewhere other than the OS's resolvers: for
// publisher-DNS apps, a publisher's corporate resolver reached through the L7
// tunnel as DNS over HTTPS (RFC 8484).
type Upstream interface {
	// Exchange sends a DNS query in wire format (with ID 0, as RFC 8484
	// recommends) and returns the wire-format response, which the caller
	// then owns. It must return when ctx is done. Any routes the real
	// addresses need should be in place before it returns: the client
	// connects as soon as it has the answer.
	Exchange(ctx context.Context, query []byte) ([]byte, error)
}

// Policy decides which names the agent owns. Implementations must be safe for
// concurrent use and should not block: they are called on every query.
//
// What happens to private names while the tunnel is down is the policy's to
// say: fail-open reports them not owned (they resolve through the OS's
// resolvers and go direct), fail-close keeps answering their stubs (flows to
// them then fail in the tunnel, promptly, rather than leak).
type Policy interface {
	// Lookup reports whether the agent owns name (a private app name) and how to
	// answer its A query. name is lower case, fully qualified, without the
	// trailing dot ("wiki.corp.example").
	Lookup(name string) (a Answer, owned bool)
	// Reverse maps a stub address back to its name for PTR. The name is returned
	// in the same form Lookup receives it.
	Reverse(addr netip.Addr) (name string, ok bool)
}

// Config configures a Server.
type Config struct {
	// Listen holds "ip:port" addresses (specific, not 0.0.0.0 or ::); the
	// server listens on UDP and TCP on each. Port 0 picks a free port, the same
	// one for UDP and TCP (see Addrs).
	Listen []string
	// Upstreams are the resolvers that non-private names are forwarded to, tried
	// in order.
	Upstreams []netip.AddrPort
	// Policy decides which names are private; nil forwards everything.
	Policy Policy
	// Bypass, if set, is asked about the client of each query for a private
	// name; when it reports true the query is forwarded to Upstreams as if
	// the name were public, so that a process excluded by a steering
	// exception gets the real answer. It is called on the query path and
	// must be fast (cache the process lookup).
	Bypass func(client netip.AddrPort) bool
	// Log receives the server's logs, under the name "dnsproxy"; nil
	// discards them.
	Log *zap.Logger
	// MaxInFlight bounds the forwarded queries waiting for an upstream; when
	// it is reached, further forwarded queries are answered SERVFAIL at once
	// (see forward). Locally answered names are never refused. Default 4096.
	MaxInFlight int
	// Timeout is how long one upstream is given to answer before the next one is
	// tried. Default 2s.
	Timeout time.Duration
	// CacheSize is the number of forwarded answers kept (TTL-honouring). Zero
	// means the default of 4096; negative disables the cache.
	CacheSize int
}

const (
	// defaultMaxInFlight is as many queries as the listening socket holds
	// about half of (see listenReadBuffer): when the agent has not been
	// scheduled for a while, it then reads the queries that waited all at
	// once, and those to forward must find room, or the wait the socket
	// buffer absorbed turns into SERVFAIL. With 1,024, a 10-minute DNS soak
	// (20,000 queries/s, 40% of them forwarded) got 5,033 SERVFAIL in one
	// burst, no upstream having failed (which is logged). An in-flight query
	// holds about half a kilobyte: 2 MB at most.
	defaultMaxInFlight = 4096
	defaultTimeout     = 2 * time.Second
	defaultCacheSize   = 4096
	// readBufSize is the largest query read over UDP. Queries are small; a
	// larger one is answered FORMERR.
	readBufSize = 4096
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("dnsproxy: server closed")

// Stats are counters since the server was created.
type Stats struct {
	Queries        uint64 // queries received (UDP packets and TCP messages)
	Local          uint64 // answered from the policy (stub, NODATA, PTR)
	Forwarded      uint64 // answered from an upstream (cache misses)
	Delegated      uint64 // answered by a policy's Upstream (publisher DNS)
	CacheHits      uint64 // forwarded names answered from the cache
	UpstreamErrors uint64 // upstream attempts that failed or timed out
	ServFail       uint64 // SERVFAIL we generated (all upstreams failed, none configured)
	Saturated      uint64 // forwarded queries refused because MaxInFlight was reached
	Malformed      uint64 // queries answered FORMERR, BADVERS or NOTIMP, or dropped
	// UpstreamSocketsEvicted counts the retired upstream sockets closed
	// before their last query was answered or expired, maxLingering being
	// reached; their queries fail as on a timeout.
	UpstreamSocketsEvicted uint64
}

type state int

const (
	stateNew state = iota
	stateRunning
	stateClosed
)

// Server is a DNS proxy. Create it with New, then Start it.
type Server struct {
	log       *zap.Logger
	listen    []netip.AddrPort
	bypass    func(netip.AddrPort) bool
	timeout   time.Duration
	sem       chan struct{}
	cache     *cache // nil when disabled
	policy    atomic.Pointer[policyBox]
	upstreams atomic.Pointer[upstreamSet]
	local     atomic.Pointer[upstreamSet] // the upstreams on the local network: Answer.Local

	// ctx is cancelled by Close so that queries waiting on an upstream return
	// at once and the listeners' goroutines can be waited for.
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex // guards state, tcpLn, udp, addrs
	state state
	tcpLn []net.Listener // one per listen address
	udp   []*net.UDPConn // one per listen address
	addrs []netip.AddrPort
	tcp   tcpConns
	// wg counts every goroutine of the server: UDP readers, forwarding
	// goroutines of UDP queries, TCP acceptors and connections, and the
	// readers of upstream sockets.
	wg       sync.WaitGroup
	inflight inflight // UDP queries waiting for an upstream (udpforward.go)
	// upMu serialises SetUpstreams, which retires the sockets of upstreams
	// it drops.
	upMu sync.Mutex

	upLog   rateLimiter
	satLog  rateLimiter // MaxInFlight reached
	evLog   rateLimiter // retired upstream sockets closed early
	counter counters
}

type policyBox struct{ p Policy }

type counters struct {
	queries, local, forwarded, delegated, cacheHits, upstreamErrors,
	servFail, saturated, malformed, evicted atomic.Uint64
}

// New validates cfg and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if len(cfg.Listen) == 0 {
		return nil, errors.New("dnsproxy: no listen address")
	}
	var listen []netip.AddrPort
	for _, l := range cfg.Listen {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			return nil, fmt.Errorf("dnsproxy: listen address %q: want ip:port: %w", l, err)
		}
		// Replies leave from the socket's own address; on a wildcard socket the
		// kernel could pick another one and clients would drop the reply. A
		// wildcard would also offer the resolver to the whole network.
		if ap.Addr().IsUnspecified() {
			return nil, fmt.Errorf("dnsproxy: listen address %q: use a specific address, not a wildcard", l)
		}
		listen = append(listen, ap)
	}
	if err := validUpstreams(cfg.Upstreams); err != nil {
		return nil, err
	}
	if cfg.MaxInFlight < 0 || cfg.Timeout < 0 {
		return nil, errors.New("dnsproxy: MaxInFlight and Timeout must not be negative")
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = defaultMaxInFlight
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	log := zap.NewNop()
	if cfg.Log != nil {
		log = cfg.Log.Named("dnsproxy")
	}
	s := &Server{
		log:     log,
		listen:  listen,
		bypass:  cfg.Bypass,
		timeout: cfg.Timeout,
		sem:     make(chan struct{}, cfg.MaxInFlight),
		upLog:   rateLimiter{every: 10 * time.Second},
		satLog:  rateLimiter{every: 10 * time.Second},
		evLog:   rateLimiter{every: 10 * time.Second},
	}
	switch {
	case cfg.CacheSize == 0:
		s.cache = newCache(defaultCacheSize)
	case cfg.CacheSize > 0:
		s.cache = newCache(cfg.CacheSize)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.SetPolicy(cfg.Policy)
	s.SetUpstreams(cfg.Upstreams)
	return s, nil
}

func validUpstreams(u []netip.AddrPort) error {
	for _, a := range u {
		if !a.IsValid() || a.Port() == 0 {
			return fmt.Errorf("dnsproxy: invalid upstream %v", a)
		}
	}
	return nil
}

// SetPolicy atomically replaces the policy; nil forwards every name.
func (s *Server) SetPolicy(p Policy) {
	s.policy.Store(&policyBox{p: p})
}

// SetUpstreams atomically replaces the upstream resolvers. Invalid entries are
// dropped and logged. Cached answers are kept: they stay true until their TTL.
// What was learnt about the old upstreams' health is forgotten; the sockets
// to upstreams that stay are kept, those to the others closed once their
// queries are answered.
func (s *Server) SetUpstreams(u []netip.AddrPort) {
	ok := make([]netip.AddrPort, 0, len(u))
	for _, a := range u {
		if !a.IsValid() || a.Port() == 0 {
			s.log.Warn("ignoring invalid upstream", zap.Stringer("upstream", a))
			continue
		}
		if slices.Contains(s.listen, a) {
			// The OS resolver pointed at us already (a leftover, or the agent
			// listening where the system resolver was): forwarding there
			// would loop.
			s.log.Warn("ignoring upstream that is this proxy", zap.Stringer("upstream", a))
			continue
		}
		ok = append(ok, a)
	}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	old := s.upstreams.Load()
	set := &upstreamSet{addrs: ok, pools: make([]*udpPool, len(ok)), downUntil: make([]atomic.Int64, len(ok))}
	kept := map[*udpPool]bool{}
	for i, a := range ok {
		if j := slices.Index(old.addrsOrNil(), a); j >= 0 && !kept[old.pools[j]] {
			set.pools[i] = old.pools[j]
		} else {
			set.pools[i] = newUDPPool(s, a)
		}
		kept[set.pools[i]] = true
	}
	s.upstreams.Store(set)
	s.local.Store(set.localOnly())
	if old != nil {
		for _, p := range old.pools {
			if !kept[p] {
				p.retire()
			}
		}
	}
	s.log.Info("upstream resolvers", zap.Stringers("upstreams", ok))
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	c := &s.counter
	return Stats{
		Queries:        c.queries.Load(),
		Local:          c.local.Load(),
		Forwarded:      c.forwarded.Load(),
		Delegated:      c.delegated.Load(),
		CacheHits:      c.cacheHits.Load(),
		UpstreamErrors: c.upstreamErrors.Load(),
		ServFail:       c.servFail.Load(),
		Saturated:      c.saturated.Load(),
		Malformed:      c.malformed.Load(),

		UpstreamSocketsEvicted: c.evicted.Load(),
	}
}

// Addrs reports the addresses the server listens on (UDP and TCP share each),
// with ports chosen by the system filled in. It is empty before Start.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// Start binds every listener and starts serving. It binds synchronously: when
// it returns nil, queries are being answered on every address; when it returns
// an error, nothing is left bound.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return errors.New("dnsproxy: already started")
	case stateClosed:
		return ErrClosed
	}
	var (
		pcs   []*net.UDPConn
		lns   []net.Listener
		addrs []netip.AddrPort
	)
	closeAll := func() {
		for _, pc := range pcs {
			pc.Close()
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, l := range s.listen {
		pc, ln, err := bindPair(l)
		if err != nil {
			closeAll()
			return err
		}
		pcs, lns = append(pcs, pc), append(lns, ln)
		addrs = append(addrs, pc.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	for _, pc := range pcs {
		s.serveUDP(pc)
	}
	for _, ln := range lns {
		s.serveTCP(ln)
	}
	s.tcpLn = lns
	s.udp = pcs
	s.addrs = addrs
	s.state = stateRunning
	for _, a := range addrs {
		s.log.Info("dns proxy listening", zap.Stringer("addr", a))
	}
	return nil
}

// bindPair binds UDP and TCP on ap. With port 0 it uses the UDP port the
// system chose for TCP too, retrying a few times if TCP has it taken.
func bindPair(ap netip.AddrPort) (*net.UDPConn, net.Listener, error) {
	var lastErr error
	for range 8 {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return nil, nil, listenError("udp", ap, err)
		}
		// A burst of queries that arrives while the agent is not scheduled
		// waits in the socket rather than being dropped by the kernel (see
		// listenReadBuffer).
		pc.SetReadBuffer(listenReadBuffer)
		bound := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(bound))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = listenError("tcp", bound, err)
		if ap.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, lastErr
}

func listenError(network string, ap netip.AddrPort, err error) error {
	hint := ""
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint = ": another DNS server (systemd-resolved, dnsmasq, a previous ztagent) " +
			"is bound there; stop it or configure another DNS listen address"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		hint = ": binding a port below 1024 needs root or CAP_NET_BIND_SERVICE"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = ": no interface has this address; add it first or listen on another"
	}
	return fmt.Errorf("dnsproxy: cannot listen on %s %s%s: %w", network, ap, hint, err)
}

// Close stops the listeners, cancels queries waiting on upstreams and returns
// once every goroutine of the server has exited. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return nil
	}
	s.state = stateClosed
	lns, udp := s.tcpLn, s.udp
	s.tcpLn, s.udp = nil, nil
	s.mu.Unlock()

	// Order: cancel first so queries waiting on upstreams return (and the
	// upstream sockets close, ending their readers), then close the
	// listeners (UDP readers and TCP acceptors exit), then the TCP
	// connections (their goroutines exit once their query is answered), then
	// wait for every goroutine.
	s.cancel()
	var errs []error
	for _, c := range udp {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ln := range lns {
		if err := ln.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.tcp.closeAll()
	s.wg.Wait()
	return errors.Join(errs...)
}

// rateLimiter lets one event through per interval; it keeps hot-path log
// lines from flooding the journal when an upstream is down.
type rateLimiter struct {
	every time.Duration
	last  atomic.Int64 // unix nanoseconds
}

func (r *rateLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(r.every) {
		return false
	}
	return r.last.CompareAndSwap(last, now)
}
