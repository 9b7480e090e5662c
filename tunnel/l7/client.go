package l7

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ClientConfig configures the agent's end of the tunnel.
type ClientConfig struct {
	// Addr is the PoP's "host:port".
	Addr string
	// PoPs, when set, replaces Addr with several PoPs: the client connects
	// to the one with the lowest RTT and fails over to the next (see pops.go).
	PoPs []PoP
	// TLS holds the device certificate, the tenant's RootCAs and the PoP's
	// ServerName. NextProtos and MinVersion are overridden (h2, TLS 1.3).
	TLS *tls.Config
	Log *zap.Logger
	// DialTimeout bounds the TCP connect and TLS handshake (default 10s).
	DialTimeout time.Duration
	// Dial, when set, dials the TCP connection to the PoP.
	Dial DialFunc
	// RetryMin and RetryMax bound the jittered exponential delay between
	// reconnect attempts (defaults 500ms and 30s).
	RetryMin, RetryMax time.Duration
}

// Tunnel states reported by Status. A client is connecting until its first attempt
// ends; after that it is connected or down (and stays down, Since unchanged, while
// it retries); closed after Close.
const (
	StateConnecting = "connecting"
	StateConnected  = "connected"
	StateDown       = "down"
	StateClosed     = "closed"
)

// Status is a snapshot of the client's connection, for diagnostics.
type Status struct {
	State     string    `json:"state"`
	Addr      string    `json:"addr"`
	Since     time.Time `json:"since"` // when State last changed
	LastError string    `json:"last_error,omitempty"`
	Streams   int       `json:"streams"`   // streams open now
	BytesIn   uint64    `json:"bytes_in"`  // bytes received on the TLS connection, all connections
	BytesOut  uint64    `json:"bytes_out"` // bytes sent
	Connects  uint64    `json:"connects"`  // connections made since Start
	Attempts  uint64    `json:"attempts"`  // connection attempts since Start, made or failed
}

// tunnelConn is one live connection to the PoP.
type tunnelConn struct {
	cc       *ClientConn
	conn     *CountingConn
	addr     string      // the PoP's
	since    time.Time   // when it was connected
	checking atomic.Bool // a check's PING is under way
}

// Client keeps one TLS connection to the PoP up and opens a CONNECT stream on it for
// every flow.
type Client struct {
	cfg     ClientConfig
	log     *zap.Logger
	popList *pops // where to dial

	ctx    context.Context // canceled by Close; parent of the dial
	cancel context.CancelFunc
	wg     sync.WaitGroup // the run goroutine

	cur atomic.Pointer[tunnelConn] // nil unless connected
	// reconnect carries Reconnect's requests to the run loop (one pending:
	// requests coalesce).
	reconnect chan string
	// replacing is closed when the connection a Reconnect asked for is up
	// (or could not be made); nil when none is pending.
	replacing atomic.Pointer[chan struct{}]

	mu      sync.Mutex
	started bool
	closed  bool
	state   string
	// connected mirrors state == StateConnected for lock-free readers.
	connected atomic.Bool
	since     time.Time
	lastErr   string

	streams           atomic.Int64
	bytesIn, bytesOut atomic.Uint64
	connects          atomic.Uint64
	attempts          atomic.Uint64
}

// NewClient returns a client that does nothing until Start.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg:       cfg,
		log:       cfg.Log.Named("l7client"),
		popList:   newPoPs(cfg),
		ctx:       ctx,
		cancel:    cancel,
		reconnect: make(chan string, 1),
		state:     StateConnecting,
		since:     time.Now(),
	}
}

// Start launches the goroutine that connects to the PoP and reconnects, with
// jittered exponential backoff (see Backoff.Delay), whenever the connection is
// lost. It is a no-op after the first call or after Close.
func (c *Client) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	c.wg.Add(1)
	go c.run()
}

// Close tears the tunnel down: the connection and every stream on it are closed, and
// Close returns after the client's goroutines have exited. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	// Cancel aborts a dial in progress and wakes the run loop, which closes the
	// current connection (resetting its streams) before it exits.
	c.cancel()
	c.wg.Wait()
	c.endReplacing()
	c.setState(StateClosed, nil)
	return nil
}

// Status returns a snapshot of the tunnel's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{
		State:     c.state,
		Addr:      c.popList.current(),
		Since:     c.since,
		LastError: c.lastErr,
		Streams:   int(c.streams.Load()),
		BytesIn:   c.bytesIn.Load(),
		BytesOut:  c.bytesOut.Load(),
		Connects:  c.connects.Load(),
		Attempts:  c.attempts.Load(),
	}
}

func (c *Client) setState(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.lastErr = err.Error()
	}
	if c.state == state || c.state == StateClosed {
		return
	}
	c.state, c.since = state, time.Now()
	c.connected.Store(state == StateConnected)
}

// Connected reports whether the tunnel is up, without a lock: the DNS proxy
// asks on every private-name query.
func (c *Client) Connected() bool { return c.connected.Load() }

// run owns the connections: connect, serve until the connection is lost,
// wait, repeat. A connection the PoP sends GOAWAY on is replaced at once (see
// serve); Reconnect cuts a wait short.
func (c *Client) run() {
	defer c.wg.Done()
	var bg sync.WaitGroup // connections draining, checks under way
	defer bg.Wait()
	bo := NewBackoff(c.cfg.RetryMin, c.cfg.RetryMax)
	quickGoAway := false // the last connection got GOAWAY soon after it was made
	for {
		c.takeRequests() // this attempt answers them
		c.attempts.Add(1)
		tc, err := c.connect()
		if err == nil {
			bo.Reset()
			err = c.serve(tc, &bg)
			if errors.Is(err, errGoAway) {
				// The PoP is going away: connect again now, unless GOAWAY
				// twice in a row came at once (a PoP turning every
				// connection away gets the backoff, not a loop).
				quick := time.Since(tc.since) < minGoAwayLife
				if !quick || !quickGoAway {
					quickGoAway = quick
					continue
				}
			}
		}
		quickGoAway = false
		if c.ctx.Err() != nil {
			return
		}
		c.setState(StateDown, err)
		delay := bo.Delay(err)
		lvl := zap.WarnLevel
		if bo.Repeated(err) {
			lvl = zap.DebugLevel
		}
		c.log.Log(lvl, "tunnel down", zap.String("pop", c.popList.current()), zap.Error(err), zap.Duration("retry_in", delay))
		if !c.wait(delay) {
			return
		}
	}
}

// connect dials the PoP and starts HTTP/2 on the connection.
func (c *Client) connect() (*tunnelConn, error) {
	raw, addr, err := c.dialPoP()
	if err != nil {
		return nil, err
	}
	if p := raw.ConnectionState().NegotiatedProtocol; p != ALPNClient {
		raw.Close()
		return nil, fmt.Errorf("dial PoP %s: negotiated protocol %q, want %q", addr, p, ALPNClient)
	}
	conn := NewCountingConn(raw, &c.bytesIn, &c.bytesOut)
	cc, err := NewClientConn(conn, c.log)
	if err != nil {
		return nil, fmt.Errorf("start HTTP/2 with PoP %s: %w", addr, err)
	}
	return &tunnelConn{cc: cc, conn: conn, addr: addr, since: time.Now()}, nil
}

// Open opens a stream to t and blocks until the PoP answered. On success the
// returned net.Conn carries the flow's bytes and implements CloseWrite. A refusal
// is a *RefusedError (errors.Is(err, ErrRefused)); with no connection to the PoP it
// fails at once with ErrNotConnected. ctx bounds only the wait for the answer.
func (c *Client) Open(ctx context.Context, t Target) (net.Conn, error) {
	if t.Host == "" || t.Port == 0 {
		return nil, fmt.Errorf("l7: open %q: %w", t.Authority(), ErrBadTarget)
	}
	tc := c.current(ctx)
	if tc == nil || !tc.cc.CanTakeNewRequest() {
		return nil, ErrNotConnected
	}
	st, err := tc.cc.Connect(ctx, t)
	if err != nil {
		return nil, c.requestError(tc, "open "+t.String(), err)
	}
	c.streams.Add(1)
	return &streamConn{s: st, local: tc.conn.LocalAddr(), remote: Addr{Target: t}, onClose: c.streamClosed}, nil
}

func (c *Client) streamClosed() { c.streams.Add(-1) }

// requestError types the failure of a request (what) on tc: refusals and the
// caller's context pass through, a dead connection is ErrNotConnected.
func (c *Client) requestError(tc *tunnelConn, what string, err error) error {
	var re *RefusedError
	switch {
	case errors.As(err, &re), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case c.cur.Load() != tc || !tc.cc.CanTakeNewRequest():
		// The connection died under us; say so in the way callers test for.
		return fmt.Errorf("%w: %s: %v", ErrNotConnected, what, err)
	default:
		return fmt.Errorf("l7: %s: %w", what, err)
	}
}
