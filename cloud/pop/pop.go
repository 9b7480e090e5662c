// Package pop is the reference cloud's PoP, the L7 broker and policy
// enforcement point. Devices and publishers dial one TLS 1.3 listener, both
// with certificates from the tenant CA, told apart by ALPN. For every CONNECT
// stream, DNS-over-HTTPS query and ICMP echo a device sends, the PoP asks its
// Authorize hooks (the tenant's policy), picks a publisher of the app (the
// first online one of those the device selected by RTT, else any online one
// round-robin), opens the matching stream on that publisher's connection (on
// which the PoP is the HTTP/2 client) and relays bytes, half-closes and resets
// end to end. Refusals are tunnel/l7's statuses and Zt-Reason header. The
// agent never links it.
package pop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// Config configures the broker.
type Config struct {
	// TLS holds the PoP's certificate and the tenant CA as ClientCAs; every peer
	// must present a certificate (ClientAuth is forced to RequireAndVerifyClientCert).
	// NextProtos and MinVersion are overridden.
	TLS *tls.Config
	// Authorize decides whether the device with certificate peer may reach t, and
	// names the publishers that serve t's app. An error refuses the stream with 403
	// and the error's text as the reason.
	Authorize func(peer *x509.Certificate, t l7.Target) (publishers []string, err error)
	// AuthorizeDNS decides whether the device with certificate peer may resolve
	// qname (canonical: lower case, with the final dot, e.g. "wiki.corp.example.")
	// through the publishers of app appID, and names them. An error refuses the
	// query with 403 and the error's text as the reason. Nil denies every query.
	AuthorizeDNS func(peer *x509.Certificate, appID, qname string) (publishers []string, err error)
	// AuthorizeEcho decides whether the device with certificate peer may ping
	// host (a name or an address literal, as the client sent it) through the
	// publishers of app appID, and names them. An echo has no port: the
	// reference policy lets a user who may reach the app ping its hosts. An
	// error refuses the echo with 403. Nil denies every echo.
	AuthorizeEcho func(peer *x509.Certificate, appID, host string) (publishers []string, err error)
	// AuthorizeApp decides whether the device with certificate peer may use app
	// appID at all, and names its publishers: a device may probe only those. An
	// error refuses the probe with 403. Nil denies every probe.
	AuthorizeApp func(peer *x509.Certificate, appID string) (publishers []string, err error)
	// Publisher identifies a publisher's connection by its certificate.
	Publisher func(peer *x509.Certificate) (name string, ok bool)
	Log       *zap.Logger
	// OpenTimeout bounds the wait for a publisher's answer to a stream or a DNS
	// query (default 30s); past it the client gets 504.
	OpenTimeout time.Duration
}

// ErrClosed is returned by Server.Serve after Close.
var ErrClosed = errors.New("pop: closed")

// Server accepts client and publisher connections on the same listener (told apart by
// ALPN) and stitches each client stream to a stream on a publisher's connection.
type Server struct {
	cfg     Config
	log     *zap.Logger
	tlsConf *tls.Config
	// h2s serves the client connections; its Shutdown sends them GOAWAY.
	h2s l7.Server

	ctx    context.Context // parent of every stream; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection goroutines, handlers and their relays
	// clients counts the client connections being served (within wg), for
	// Shutdown to wait for.
	clients sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	draining  bool // Shutdown began: no new client connection is served
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	pubs      map[string][]*pubConn // by name, oldest first
	rr        map[string]uint64     // round-robin position per app
	pubWake   chan struct{}         // closed and replaced when a publisher connection starts or ends

	probeFailures atomic.Uint64
}

// pubConn is a publisher's connection, on which the PoP is the HTTP/2 client.
type pubConn struct {
	name string
	cc   *l7.ClientConn
}

// New returns a PoP that serves nothing until Serve.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = l7.DefaultOpenTimeout
	}
	// Missing hooks fail closed: no policy denies every stream, no publisher
	// identification admits no publisher.
	if cfg.Authorize == nil {
		cfg.Authorize = func(*x509.Certificate, l7.Target) ([]string, error) {
			return nil, errors.New("no access policy")
		}
	}
	if cfg.AuthorizeDNS == nil {
		cfg.AuthorizeDNS = func(*x509.Certificate, string, string) ([]string, error) {
			return nil, errors.New("no DNS policy")
		}
	}
	if cfg.AuthorizeEcho == nil {
		cfg.AuthorizeEcho = func(*x509.Certificate, string, string) ([]string, error) {
			return nil, errors.New("no echo policy")
		}
	}
	if cfg.AuthorizeApp == nil {
		cfg.AuthorizeApp = func(*x509.Certificate, string) ([]string, error) {
			return nil, errors.New("no app policy")
		}
	}
	if cfg.Publisher == nil {
		cfg.Publisher = func(*x509.Certificate) (string, bool) { return "", false }
	}
	tc := cfg.TLS.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	tc.NextProtos = []string{l7.ALPNClient, l7.ALPNPublisher}
	tc.MinVersion = tls.VersionTLS13
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:       cfg,
		log:       cfg.Log.Named("pop"),
		tlsConf:   tc,
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
		pubs:      make(map[string][]*pubConn),
		rr:        make(map[string]uint64),
		pubWake:   make(chan struct{}),
	}
}

// Serve accepts connections on ln (a plain TCP listener; the PoP does TLS) until ln
// fails or the PoP is closed or shut down, when it returns ErrClosed.
func (p *Server) Serve(ln net.Listener) error {
	if !p.track(func() { p.listeners[ln] = struct{}{} }) {
		ln.Close()
		return ErrClosed
	}
	defer p.untrack(func() { delete(p.listeners, ln) })
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.isClosed() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				p.log.Warn("accept", zap.Error(err), zap.Duration("retry_in", delay))
				if !l7.SleepCtx(p.ctx.Done(), delay) {
					return ErrClosed
				}
				continue
			}
			return err
		}
		delay = 0
		if !p.track(func() { p.conns[c] = struct{}{}; p.wg.Add(1) }) {
			c.Close()
			continue
		}
		go p.serveConn(c)
	}
}

// Close stops every listener, resets every stream, closes every connection and
// waits for the PoP's goroutines. It is idempotent.
func (p *Server) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	// After closed is set nothing is added to the maps (only removed), so these
	// snapshots hold everything left to close.
	lns := slices.Collect(maps.Keys(p.listeners))
	conns := slices.Collect(maps.Keys(p.conns))
	p.mu.Unlock()

	// Order: stop accepting; cancel stream contexts so handlers unwind; close the
	// connections so HTTP/2 serve and read loops end; then wait.
	for _, ln := range lns {
		ln.Close()
	}
	p.cancel()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
	return nil
}

// track runs add under the lock unless the PoP is closed, and reports whether it ran.
func (p *Server) track(add func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	add()
	return true
}

func (p *Server) untrack(del func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	del()
}

// isClosed reports whether Close or Shutdown began.
func (p *Server) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed || p.draining
}

// serveConn authenticates a connection and serves it as a client or a publisher.
func (p *Server) serveConn(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(func() { delete(p.conns, c) })
	defer c.Close()

	tc := l7.ServerTLS(c, p.tlsConf)
	ctx, cancel := context.WithTimeout(p.ctx, l7.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		p.log.Debug("handshake failed", zap.Stringer("remote", c.RemoteAddr()), zap.Error(err))
		return
	}
	st := tc.ConnectionState()
	peer := st.PeerCertificates[0] // RequireAndVerifyClientCert guarantees one
	switch st.NegotiatedProtocol {
	case l7.ALPNClient:
		// A client connected as Shutdown began is let go at once: it
		// reconnects, to the PoP that replaces this one.
		if !p.trackClient() {
			return
		}
		defer p.clients.Done()
		p.serveClient(tc, peer)
	case l7.ALPNPublisher:
		p.servePublisher(tc, peer)
	default:
		p.log.Info("rejecting connection without a known protocol",
			zap.Stringer("remote", c.RemoteAddr()), zap.String("peer", peer.Subject.CommonName))
	}
}

// serveClient serves a device's connection until it ends.
func (p *Server) serveClient(c net.Conn, peer *x509.Certificate) {
	log := p.log.With(zap.String("peer", peer.Subject.CommonName), zap.Stringer("remote", c.RemoteAddr()))
	log.Debug("client connected")
	p.h2s.ServeConn(withDevice(p.ctx, &device{}), c, log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A handler may start after Close began waiting; it must not run then.
		if !p.track(func() { p.wg.Add(1) }) {
			return
		}
		defer p.wg.Done()
		p.dispatch(w, r, peer, log)
	}))
	log.Debug("client disconnected")
}

// dispatch routes a client's stream: CONNECT is a TCP flow, extended CONNECT
// with connect-udp a UDP flow, POST /dns-query a publisher-side DNS query,
// POST /icmp-echo a ping.
func (p *Server) dispatch(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	switch {
	case l7.IsConnect(r), l7.IsConnectUDP(r):
		p.serveConnect(w, r, peer, log)
	case l7.IsDNSQuery(r):
		p.serveDNS(w, r, peer, log)
	case l7.IsEchoRequest(r):
		p.serveEcho(w, r, peer, log)
	case l7.IsProbe(r):
		p.serveProbe(w, r, peer, log)
	case l7.IsSelection(r):
		p.serveSelection(w, r, log)
	case l7.IsSpeed(r):
		p.serveSpeed(w, r, peer, log)
	default:
		l7.Refuse(w, http.StatusMethodNotAllowed, "unsupported request "+r.Method)
	}
}

// servePublisher registers a publisher's connection until it ends.
func (p *Server) servePublisher(c net.Conn, peer *x509.Certificate) {
	name, ok := p.cfg.Publisher(peer)
	log := p.log.With(zap.String("peer", peer.Subject.CommonName), zap.Stringer("remote", c.RemoteAddr()))
	if !ok {
		log.Warn("rejecting publisher connection: certificate is not a publisher's")
		return
	}
	log = log.With(zap.String("publisher", name))
	var in, out atomic.Uint64
	conn := l7.NewCountingConn(c, &in, &out)
	cc, err := l7.NewClientConn(conn, log)
	if err != nil {
		log.Warn("publisher connection", zap.Error(err))
		return
	}
	pc := &pubConn{name: name, cc: cc}
	var older []*pubConn
	p.untrack(func() {
		older = slices.Clone(p.pubs[name])
		p.pubs[name] = append(p.pubs[name], pc)
		p.publishersChangedLocked()
	})
	log.Info("publisher online")
	// New streams take this connection (see pick). A publisher that dials in
	// again may have left one whose path died unseen (a frozen host, a NAT
	// that forgot it): it must answer a PING now, not at its keepalive.
	for _, o := range older {
		if err := o.cc.Ping(l7.CheckTimeout); err != nil {
			log.Info("publisher's previous connection is dead", zap.Error(err))
		}
	}
	select {
	case <-cc.Done():
	case <-p.ctx.Done():
	}
	p.untrack(func() { p.removePubLocked(pc) })
	cc.Close()
	log.Info("publisher offline", zap.Uint64("bytes_in", in.Load()), zap.Uint64("bytes_out", out.Load()))
}

func (p *Server) removePubLocked(pc *pubConn) {
	defer p.publishersChangedLocked()
	cs := p.pubs[pc.name]
	for i, c := range cs {
		if c == pc {
			cs = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(p.pubs, pc.name)
		return
	}
	p.pubs[pc.name] = cs
}

// Online returns the names of the publishers connected now, sorted.
func (p *Server) Online() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.pubs))
}

// pick chooses, round-robin per app, an online publisher among those allowed. Of
// several connections from one publisher (a reconnect racing the old connection's
// death) the newest usable one wins.
func (p *Server) pick(app string, allowed []string) *pubConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	online := make([]*pubConn, 0, len(allowed))
	for _, name := range allowed {
		if pc := p.onlineLocked(name); pc != nil {
			online = append(online, pc)
		}
	}
	if len(online) == 0 {
		return nil
	}
	n := p.rr[app]
	p.rr[app] = n + 1
	return online[n%uint64(len(online))]
}
