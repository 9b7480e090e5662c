// Package publisher is the reference cloud's connector inside the corporate
// network. It enrolls with the tenant API by its registration token (keeping
// its key and certificate in a state directory), dials out to the PoP, so that
// the corporate network needs no inbound port, and serves the PoP's streams on
// that connection as the HTTP/2 server: it resolves each target with the
// corporate resolver, connects and relays, answers publisher-side DNS
// queries with that resolver's answers, and pings hosts for clients' ICMP
// echoes. The agent never links it.
package publisher

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/flowio"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// Config configures a publisher: the connector inside the corporate network
// that dials out to the PoP and connects streams to their targets.
type Config struct {
	Name    string // for logs; the PoP identifies the publisher by its certificate
	PoPAddr string // "host:port"
	// TLS holds the publisher's certificate, RootCAs and ServerName for the PoP.
	// NextProtos and MinVersion are overridden.
	TLS *tls.Config
	// Resolver is the DNS server ("ip:port") that resolves targets and answers
	// publisher-side DNS queries, normally the corporate DNS; empty means the
	// system's resolver (for DNS queries, the first nameserver in /etc/resolv.conf).
	Resolver string
	// DialTimeout bounds resolving and connecting to a target, a DNS query's
	// exchange with the resolver, and dialing the PoP (default 10s).
	DialTimeout time.Duration
	// UDPIdle closes a UDP flow after this long without a datagram either
	// way (default DefaultUDPIdle, see publisher_udp.go).
	UDPIdle time.Duration
	Log     *zap.Logger
	// RetryMin and RetryMax bound the jittered exponential delay between attempts
	// to reach the PoP (defaults 500ms and 30s).
	RetryMin, RetryMax time.Duration
}

// Publisher keeps a connection to the PoP, on which it is the HTTP/2 server.
type Publisher struct {
	cfg      Config
	log      *zap.Logger
	tlsConf  *tls.Config
	h2s      l7.Server
	resolver *net.Resolver // also the dialer's
	dialer   net.Dialer
	pinger   *pinger
	names    *resolveCache // the names of targets, with cfg.Resolver; nil for the system's resolver

	wg       sync.WaitGroup // handlers
	mu       sync.Mutex
	stopping bool
}

// New returns a publisher that does nothing until Run.
func New(cfg Config) *Publisher {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = l7.DefaultDialTimeout
	}
	tc := l7.ClientTLS(cfg.TLS, cfg.PoPAddr, l7.ALPNPublisher)
	p := &Publisher{
		cfg:      cfg,
		log:      cfg.Log.Named("publisher").With(zap.String("publisher", cfg.Name)),
		tlsConf:  tc,
		resolver: net.DefaultResolver,
		dialer:   net.Dialer{KeepAlive: l7.ReadIdle, Resolver: net.DefaultResolver},
	}
	p.pinger = newPinger(p.log)
	if cfg.Resolver != "" {
		p.names = newResolveCache(cfg.Resolver)
	}
	return p
}

// Run connects to the PoP and serves it, reconnecting with jittered exponential
// backoff (l7.Backoff.Delay), until ctx is done; then it closes the connection, waits for every stream
// to end and returns ctx's error. Run may be called once.
func (p *Publisher) Run(ctx context.Context) error {
	if p.cfg.PoPAddr == "" {
		return errors.New("publisher: no PoP address")
	}
	bo := l7.NewBackoff(p.cfg.RetryMin, p.cfg.RetryMax)
	for {
		err := p.serveOnce(ctx, &bo)
		if ctx.Err() != nil {
			break
		}
		delay := bo.Delay(err)
		lvl := zap.WarnLevel
		if bo.Repeated(err) {
			lvl = zap.DebugLevel
		}
		p.log.Log(lvl, "PoP connection down", zap.String("pop", p.cfg.PoPAddr), zap.Error(err), zap.Duration("retry_in", delay))
		if !l7.SleepCtx(ctx.Done(), delay) {
			break
		}
	}
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.wg.Wait()
	return ctx.Err()
}

// serveOnce dials the PoP and serves the connection until it ends.
func (p *Publisher) serveOnce(ctx context.Context, bo *l7.Backoff) error {
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	conn, err := l7.DialTLS(dctx, nil, p.cfg.PoPAddr, p.tlsConf)
	cancel()
	if err != nil {
		return fmt.Errorf("dial PoP %s: %w", p.cfg.PoPAddr, err)
	}
	defer conn.Close()
	if proto := conn.ConnectionState().NegotiatedProtocol; proto != l7.ALPNPublisher {
		return fmt.Errorf("dial PoP %s: negotiated protocol %q, want %q", p.cfg.PoPAddr, proto, l7.ALPNPublisher)
	}
	bo.Reset()
	// ServeConn returns when the connection fails; closing it is how ctx stops it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	p.log.Info("connected to PoP", zap.String("pop", p.cfg.PoPAddr))
	p.h2s.ServeConn(ctx, conn, p.log, http.HandlerFunc(p.handle))
	return errors.New("connection lost")
}

// handle is the publisher's dispatch function: every stream the PoP opens lands here.
func (p *Publisher) handle(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	switch {
	case l7.IsConnect(r):
		p.serveConnect(w, r)
	case l7.IsConnectUDP(r):
		p.serveUDP(w, r)
	case l7.IsDNSQuery(r):
		p.serveDNS(w, r)
	case l7.IsEchoRequest(r):
		p.serveEcho(w, r)
	case l7.IsProbe(r):
		// The agent measures its RTT to this publisher through the PoP.
		l7.AnswerProbe(w)
	case l7.IsSpeed(r):
		// A speed test: bytes to or from the agent, no target.
		l7.ServeSpeed(w, r)
	default:
		l7.Refuse(w, http.StatusMethodNotAllowed, "unsupported request "+r.Method)
	}
}

// serveConnect connects a stream to its target and relays until both are done.
func (p *Publisher) serveConnect(w http.ResponseWriter, r *http.Request) {
	t, err := l7.ParseTarget(r)
	if err != nil {
		l7.Refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	conn, status, err := p.dial(r.Context(), t)
	if err != nil {
		p.log.Debug("target unreachable", zap.String("target", t.Authority()), zap.String("app", t.AppID), zap.Error(err))
		l7.Refuse(w, status, err.Error())
		return
	}
	defer conn.Close()
	// A reset from the PoP cancels the stream's context; closing the connection
	// unblocks both directions.
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	defer stop()

	w.WriteHeader(http.StatusOK)
	flush := l7.Flusher(w)
	if err := flush(); err != nil {
		return
	}
	relayTarget(w, flush, r.Body, conn)
}

// relayTarget copies bytes both ways between a stream and its target connection until
// both directions are done, and owns the goroutine that carries the upstream one.
// END_STREAM from the PoP becomes a FIN to the target and the target's FIN ends the
// stream (END_STREAM) while the PoP's bytes go on to the target: a half-close
// travels either way. A reset on either side resets the other. Neither direction
// holds a buffer while it waits for data.
func relayTarget(w http.ResponseWriter, flush func() error, body io.ReadCloser, conn *net.TCPConn) {
	var finished atomic.Bool // the downstream direction failed; upstream is abandoned
	done := make(chan struct{})
	go func() {
		defer close(done)
		readErr, writeErr := flowio.Copy(conn, body, l7.BodyWaiter(body), nil)
		if (readErr != nil || writeErr != nil) && !finished.Load() {
			// The PoP reset the stream: reset the target's connection too.
			conn.SetLinger(0)
			conn.Close()
			return
		}
		conn.CloseWrite()
	}()
	defer func() {
		// A request body may not be read after the handler returns: stop the
		// upstream copy, wherever it is blocked, and wait.
		finished.Store(true)
		body.Close()
		conn.SetWriteDeadline(time.Now())
		<-done
	}()
	if readErr, writeErr := flowio.Copy(w, conn, flowio.Waiter(conn), flush); readErr != nil || writeErr != nil {
		// The target reset the connection (or the stream is gone): reset the stream.
		panic(http.ErrAbortHandler)
	}
	// The target half-closed: end the response, and carry the PoP's bytes to
	// the target until the PoP ends too (or either side resets).
	if l7.CloseResponse(w) == nil {
		<-done
	}
}

// dial resolves t (resolve) and connects, trying IPv6 and IPv4 addresses in
// parallel as net.Dialer does (RFC 6555) and splitting DialTimeout among them.
// On failure it returns the status to refuse the stream with: 504 when time
// ran out, 502 otherwise.
func (p *Publisher) dial(ctx context.Context, t l7.Target) (*net.TCPConn, int, error) {
	c, status, err := p.dialNet(ctx, "tcp", t)
	if err != nil {
		return nil, status, err
	}
	return c.(*net.TCPConn), status, nil
}

// dialNet is dial for network "tcp" or "udp" (a connected socket to the first
// address the name resolves to).
func (p *Publisher) dialNet(ctx context.Context, network string, t l7.Target) (net.Conn, int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	addrs, err := p.resolve(ctx, p.rooted(t.Host))
	if err != nil {
		return nil, failStatus(ctx), fmt.Errorf("resolve %s: %s", t.Host, reason(err))
	}
	c, err := p.dialAddrs(ctx, network, addrs, t.Port)
	if err != nil {
		return nil, failStatus(ctx), fmt.Errorf("connect %s: %s", t.Authority(), reason(err))
	}
	return c, http.StatusOK, nil
}

// rooted roots a name for the configured resolver: the host's search domains
// belong to its own resolver, not to the one we were given.
func (p *Publisher) rooted(host string) string {
	if _, err := netip.ParseAddr(host); err == nil || p.cfg.Resolver == "" || strings.HasSuffix(host, ".") {
		return host
	}
	return host + "."
}

func failStatus(ctx context.Context) int {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// reason is the part of a resolve or dial error worth telling the client: what went
// wrong, without the resolver's or our own addresses.
func reason(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "no such host"
		case dnsErr.IsTimeout:
			return "timed out"
		}
		return dnsErr.Err
	case errors.As(err, &opErr):
		if opErr.Timeout() {
			return "timed out"
		}
		return opErr.Err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case err == nil:
		return "no address"
	}
	return err.Error()
}
