package l3e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v2"
	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"
)

// ClientConfig configures the agent's end of the tunnel.
type ClientConfig struct {
	// Gateway is the gateway's host:port (UDP).
	Gateway string
	// ServerName is the name the gateway's certificate must carry; RootCAs the
	// tenant CA.
	ServerName string
	RootCAs    *x509.CertPool
	// Certificate is the device certificate and key the tenant issued.
	// GetCertificate, when set, is asked at every handshake instead, so that a
	// renewed certificate is used from the next association on.
	Certificate    tls.Certificate
	GetCertificate func() (*tls.Certificate, error)
	// TUN is the L3E TUN. The client reads and writes it for as long as Run
	// runs (across reconnects) and closes it when Run returns.
	TUN tun.Device
	// OnTemplate is called, one call at a time, with every new valid
	// template (the first of each association and every change): the agent
	// sets the TUN's address, routes and DNS, and hands DDNS on, from it.
	OnTemplate func(*Template)
	// Dial opens the UDP socket to the gateway (default net.Dialer); the agent
	// passes one that keeps it off its own TUNs.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// RekeyAfter and RekeyRecords bound one association: past either a new
	// one is made and traffic moves to it before the old one is closed
	// (defaults 1h and 1<<24 records, well inside AES-GCM's limits).
	RekeyAfter   time.Duration
	RekeyRecords uint64
	// BackoffMin and BackoffMax bound the wait between failed dials
	// (defaults 500ms and 30s), doubling with jitter.
	BackoffMin, BackoffMax time.Duration
	// HandshakeTimeout bounds a handshake and the template after it (default 10s).
	HandshakeTimeout time.Duration
	Log              *zap.Logger
}

// Client states.
const (
	StateConnecting = "connecting"
	StateUp         = "up"
	StateBackoff    = "backoff"
	StateStopped    = "stopped"
)

// Client keeps an association with the gateway up and pumps packets between
// it and the TUN. Build it with NewClient, run it with Run.
type Client struct {
	cfg  ClientConfig
	log  *zap.Logger
	conf *dtls.Config
	// cur is the association packets from the TUN go to (nil: none).
	cur   atomic.Pointer[session]
	stats clientCounters
	// tunw writes the packets from the gateway to the TUN while Run runs.
	tunw *TUNWriter
	// queue holds the records of the TUN batch being read and qsock is the
	// socket they go to (only the TUN reader touches them).
	queue *SendQueue
	qsock *Socket

	mu      sync.Mutex // guards state below
	state   string
	since   time.Time
	tmpl    *Template
	lastErr string

	tmu sync.Mutex // one OnTemplate call at a time
}

// NewClient checks cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Gateway == "" || cfg.TUN == nil || cfg.RootCAs == nil ||
		(len(cfg.Certificate.Certificate) == 0 && cfg.GetCertificate == nil) {
		return nil, errors.New("l3e: Gateway, TUN, RootCAs and Certificate (or GetCertificate) are required")
	}
	cfg.RekeyAfter = orDefault(cfg.RekeyAfter, time.Hour)
	cfg.RekeyRecords = orDefault(cfg.RekeyRecords, 1<<24)
	cfg.BackoffMin = orDefault(cfg.BackoffMin, 500*time.Millisecond)
	cfg.BackoffMax = orDefault(cfg.BackoffMax, 30*time.Second)
	cfg.HandshakeTimeout = orDefault(cfg.HandshakeTimeout, 10*time.Second)
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	c := &Client{cfg: cfg, log: cfg.Log, state: StateStopped}
	c.queue = NewSendQueue(&c.stats.drops[dropSend])
	c.conf = ClientDTLSConfig(cfg.Certificate, cfg.RootCAs, cfg.ServerName)
	if get := cfg.GetCertificate; get != nil {
		c.conf.Certificates = nil
		c.conf.GetClientCertificate = func(*dtls.CertificateRequestInfo) (*tls.Certificate, error) { return get() }
	}
	c.conf.LoggerFactory = LoggerFactory(c.log, &c.stats.records)
	return c, nil
}

// ClientDTLSConfig is the DTLS configuration of the device's end: its
// certificate, the tenant CA, AES-GCM suites, extended master secret required.
func ClientDTLSConfig(cert tls.Certificate, roots *x509.CertPool, serverName string) *dtls.Config {
	return &dtls.Config{
		Certificates:         []tls.Certificate{cert},
		CipherSuites:         CipherSuites,
		RootCAs:              roots,
		ServerName:           serverName,
		ExtendedMasterSecret: dtls.RequireExtendedMasterSecret,
	}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (c *Client) setState(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != state {
		c.state, c.since = state, time.Now()
	}
	if err != nil {
		c.lastErr = err.Error()
	}
}

// Run keeps the tunnel up until ctx is done: it dials, pumps, re-keys and,
// after a loss, dials again with backoff. It returns once every goroutine it
// started has exited.
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.tunw = NewTUNWriter(c.cfg.TUN, func(n int) { c.stats.drops[dropTUN].Add(uint64(n)) })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.readTUN(ctx)
	}()
	c.loop(ctx)
	// Order: the current association says bye and closes (its reader exits),
	// then the TUN writer stops and the TUN is closed, which ends the TUN
	// reader.
	if s := c.cur.Swap(nil); s != nil {
		s.close("agent stopping")
		s.wait()
	}
	c.tunw.Close()
	cancel()
	c.cfg.TUN.Close()
	wg.Wait()
	c.setState(StateStopped, nil)
	return nil
}

// loop is the one owner of associations: it makes them, replaces them on
// re-key and after loss.
func (c *Client) loop(ctx context.Context) {
	backoff := c.cfg.BackoffMin
	for ctx.Err() == nil {
		c.setState(StateConnecting, nil)
		s, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.setState(StateBackoff, err)
			c.log.Warn("L3E gateway unreachable, retrying", zap.Error(err), zap.Duration("in", backoff))
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, c.cfg.BackoffMax)
			continue
		}
		backoff = c.cfg.BackoffMin
		c.install(s)
		c.hold(ctx, s)
	}
}

// install makes s the association in use and hands its template on. The
// association it replaced still receives (the gateway may have sent on it
// before it learnt of s) until its owner, hold, closes it.
func (c *Client) install(s *session) {
	c.cur.Store(s)
	s.installed.Store(true)
	c.applyTemplate(s.tmpl.Load().t)
	c.setState(StateUp, nil)
}

// rekeyDrain is how long a replaced association keeps receiving.
const rekeyDrain = 500 * time.Millisecond

// tickEvery is how often the association in use is looked at: keepalive
// due, gateway silent, re-key due.
const tickEvery = 250 * time.Millisecond

// hold watches the association in use until it is lost (return, to reconnect)
// or due for a re-key, which makes the new association before breaking the old.
func (c *Client) hold(ctx context.Context, s *session) {
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			c.cur.CompareAndSwap(s, nil)
			c.setState(StateBackoff, s.err())
			c.stats.losses.Add(1)
			c.log.Warn("L3E association lost", zap.Error(s.err()))
			return
		case now := <-tick.C:
			s.tick(now)
		}
		if time.Since(s.start) < c.cfg.RekeyAfter && s.records.Load() < c.cfg.RekeyRecords {
			continue
		}
		next, err := c.connect(ctx)
		if err != nil {
			c.log.Warn("L3E re-key failed, keeping the current association", zap.Error(err))
			continue
		}
		c.install(next)
		c.stats.rekeys.Add(1)
		sleep(ctx, rekeyDrain)
		s.close("re-key")
		s.wait()
		s = next
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter returns d ± 20%, so that devices cut off together do not return together.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// connect dials the gateway, completes the handshake and waits for the first
// valid template.
func (c *Client) connect(ctx context.Context) (*session, error) {
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	raw, err := c.cfg.Dial(hctx, "udp", c.cfg.Gateway)
	if err != nil {
		return nil, fmt.Errorf("l3e: dial %s: %w", c.cfg.Gateway, err)
	}
	s := newSession(c, raw)
	conn, err := dtls.ClientWithContext(hctx, s.feed, c.conf)
	if err != nil {
		s.exited() // pion's reader never ran
	} else {
		err = s.established(conn)
	}
	if err != nil {
		s.fail(err)
		s.wait()
		return nil, fmt.Errorf("l3e: handshake with %s: %w", c.cfg.Gateway, err)
	}
	select {
	case <-s.ready:
		return s, nil
	case <-s.done:
		return nil, s.err()
	case <-hctx.Done():
		s.close("")
		s.wait()
		return nil, fmt.Errorf("l3e: no template from %s: %w", c.cfg.Gateway, hctx.Err())
	}
}

// applyTemplate installs a newly received template for the association s.
func (c *Client) applyTemplate(t *Template) {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	c.mu.Lock()
	c.tmpl = t
	c.mu.Unlock()
	if c.cfg.OnTemplate != nil {
		c.cfg.OnTemplate(t)
	}
}
