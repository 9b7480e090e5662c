package l7

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ztagent/ztagent/internal/pathmtu"
)

// BodyWaiter returns, for flowio.Copy, a wait for data on body, a request body of
// Server: there a zero-length Read blocks until data, the end of the body or an
// error is waiting, and holds no buffer.
func BodyWaiter(body io.Reader) func() error {
	return func() error {
		_, err := body.Read(nil)
		return err
	}
}

// Flusher returns the flush function of an HTTP/2 response writer.
func Flusher(w http.ResponseWriter) func() error {
	rc := http.NewResponseController(w)
	return rc.Flush
}

// CountingConn counts the bytes that cross a connection.
type CountingConn struct {
	net.Conn
	in, out *atomic.Uint64
}

func NewCountingConn(c net.Conn, in, out *atomic.Uint64) *CountingConn {
	return &CountingConn{Conn: c, in: in, out: out}
}

func (c *CountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(uint64(n))
	return n, err
}

func (c *CountingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(uint64(n))
	return n, err
}

// Backoff yields jittered, exponentially growing delays between reconnect attempts.
type Backoff struct {
	min, max time.Duration
	n        int
	refused  int       // attempts refused since the last Reset
	lastErr  string    // of the last failure Repeated saw
	lastWarn time.Time // when Repeated last said no
}

func NewBackoff(lo, hi time.Duration) Backoff {
	if lo <= 0 {
		lo = defaultRetryMin
	}
	if hi < lo {
		hi = max(lo, defaultRetryMax)
	}
	return Backoff{min: lo, max: hi}
}

// Next returns the delay before the next attempt: uniformly in [d/2, d) where d
// doubles from min up to max, so that a fleet of agents losing the same PoP does not
// reconnect in lockstep.
func (b *Backoff) Next() time.Duration {
	d := b.min << min(b.n, 30)
	if d > b.max || d <= 0 {
		d = b.max
	} else {
		b.n++
	}
	return d/2 + rand.N(d/2+1)
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.n, b.refused, b.lastErr = 0, 0, "" }

// Repeated reports whether err repeats the failure before it within a minute:
// an outage retried every half second is worth a warning when it starts, when
// its reason changes and once a minute, not at every attempt.
func (b *Backoff) Repeated(err error) bool {
	msg, now := err.Error(), time.Now()
	if msg == b.lastErr && now.Sub(b.lastWarn) < time.Minute {
		return true
	}
	b.lastErr, b.lastWarn = msg, now
	return false
}

// refusedRetry and refusedRetryMax bound the delay after a refused attempt
// (see Delay).
const (
	refusedRetry    = 500 * time.Millisecond
	refusedRetryMax = 1500 * time.Millisecond
)

// Delay returns the wait before the next attempt after one that failed with
// err, jittered in [d/2, d]. An attempt refused because nothing listens at the
// PoP's address costs a packet and says nothing about the PoP's load: d
// doubles from ½ s but only up to 1.5 s, so that a PoP back from a restart is
// used again within 1.5 s. Every other failure (no network, a timeout, TLS,
// the protocol, a lost connection) waits the next exponential delay, up to
// the maximum (30 s by default): a PoP that is up but failing is not
// hammered, and an agent without a network sleeps, since a network change
// reconnects it at once (the agent's network watch calls Reconnect).
func (b *Backoff) Delay(err error) time.Duration {
	if refused(err) {
		d := min(refusedRetry<<min(b.refused, 8), refusedRetryMax)
		b.refused++
		return d/2 + rand.N(d/2+1)
	}
	return b.Next()
}

// SleepCtx waits for d or until done is closed; it reports whether d elapsed.
func SleepCtx(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// readBufConn puts a read buffer under TLS. crypto/tls asks the connection for about
// one record (16 KiB) per read, one system call each; through the buffer a single
// call fetches every record the kernel has queued. This saves about a tenth of the
// CPU per byte on a bulk stream. Only crypto/tls reads the connection (under its own
// lock), so the buffer needs none.
type readBufConn struct {
	net.Conn
	r *bufio.Reader
}

func newReadBufConn(c net.Conn, size int) *readBufConn {
	return &readBufConn{Conn: c, r: bufio.NewReaderSize(c, size)}
}

func (c *readBufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// DialFunc dials a TCP connection; it lets the agent route its tunnel
// connection around its own TUN device.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DialTLS dials addr (with dial, or when nil a plain dialer that clamps the
// MSS to a path of pathmtu.SafeMTU) and completes a TLS handshake within ctx.
// The ends that dial (agent, publisher) hold one connection each, so they get
// a large read buffer.
func DialTLS(ctx context.Context, dial DialFunc, addr string, conf *tls.Config) (*TLSConn, error) {
	if dial == nil {
		d := net.Dialer{KeepAlive: ReadIdle, Control: pathmtu.Control}
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := newTLSConn(newReadBufConn(raw, dialReadBuffer), func(c net.Conn) *tls.Conn { return tls.Client(c, conf) })
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// ServerTLS is the accepting end's TLS over c. The end that accepts (the PoP)
// holds many connections, so it gets a smaller read buffer than the ends that dial.
func ServerTLS(c net.Conn, conf *tls.Config) *TLSConn {
	return newTLSConn(newReadBufConn(c, acceptReadBuffer), func(c net.Conn) *tls.Conn { return tls.Server(c, conf) })
}

// ClientTLS clones conf for dialing addr with ALPN proto and TLS 1.3 or later.
func ClientTLS(conf *tls.Config, addr, proto string) *tls.Config {
	tc := conf.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	tc.NextProtos = []string{proto}
	tc.MinVersion = tls.VersionTLS13
	if tc.ServerName == "" {
		// As tls.Dial does: verify the name we dialed.
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		}
	}
	return tc
}
