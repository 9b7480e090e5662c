package l7

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2/hpack"
)

// UDP flows: HTTP/2 extended CONNECT (RFC 8441) with the connect-udp protocol
// and the well-known URI template of RFC 9298, datagrams as DATAGRAM capsules
// (capsule.go).
const (
	ProtocolConnectUDP = "connect-udp"
	// UDPPathPrefix begins the :path of a connect-udp request, which goes on
	// "{target_host}/{target_port}/".
	UDPPathPrefix         = "/.well-known/masque/udp/"
	HeaderCapsuleProtocol = "Capsule-Protocol"
)

// ErrNoExtendedConnect is returned for a UDP flow when the peer did not
// announce SETTINGS_ENABLE_CONNECT_PROTOCOL (a PoP or publisher without UDP).
var ErrNoExtendedConnect = errors.New("l7: peer does not accept extended CONNECT (RFC 8441): no UDP through it")

// UDPPath returns the connect-udp :path for host and port. Every byte of the
// host outside RFC 3986's unreserved set is percent-encoded (an IPv6 literal's
// colons, say), as RFC 9298 §2 asks.
func UDPPath(host string, port uint16) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(UDPPathPrefix)+len(host)*3+7)
	b = append(b, UDPPathPrefix...)
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(port), 10)
	return string(append(b, '/'))
}

// IsConnectUDP reports whether r is a connect-udp request.
func IsConnectUDP(r *http.Request) bool {
	return r.Method == http.MethodConnect && r.Header.Get(":protocol") == ProtocolConnectUDP
}

// parseUDPTarget reads the target of a connect-udp request from its path.
func parseUDPTarget(r *http.Request) (Target, error) {
	bad := func(why string) (Target, error) {
		return Target{}, fmt.Errorf("bad connect-udp path %q: %s", r.URL.EscapedPath(), why)
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), UDPPathPrefix)
	if !ok {
		return bad("not under " + UDPPathPrefix)
	}
	rest, ok = strings.CutSuffix(rest, "/")
	host, port, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return bad("want {host}/{port}/")
	}
	host, err := url.PathUnescape(host)
	if err != nil || host == "" || strings.ContainsAny(host, "/[]% ") {
		return bad("bad host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || port[0] == '+' {
		return bad("bad port")
	}
	return Target{Host: host, Port: uint16(p), AppID: r.Header.Get(HeaderApp), Proto: ProtoUDP}, nil
}

// Accept answers a flow's request with 200, announcing the capsule protocol
// for a UDP flow, and flushes the answer to the peer.
func Accept(w http.ResponseWriter, t Target) error {
	if t.Proto == ProtoUDP {
		w.Header().Set(HeaderCapsuleProtocol, "?1")
	}
	w.WriteHeader(http.StatusOK)
	return Flusher(w)()
}

// OpenFlow opens t's stream: CONNECT for TCP, connect-udp for UDP, whose
// :authority is authority (the server's own name: the target is in the path).
func (cc *ClientConn) OpenFlow(ctx context.Context, authority string, t Target) (*Stream, error) {
	if t.Proto == ProtoUDP {
		return cc.ConnectUDP(ctx, authority, t)
	}
	return cc.Connect(ctx, t)
}

// ConnectUDP opens a connect-udp stream to t, once the peer's SETTINGS said it
// takes extended CONNECT, and waits within ctx for its answer. A refusal is a
// *RefusedError; a peer without extended CONNECT is ErrNoExtendedConnect.
func (cc *ClientConn) ConnectUDP(ctx context.Context, authority string, t Target) (*Stream, error) {
	select {
	case <-cc.settingsc:
	case <-cc.readDone:
		return nil, cc.newStreamErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cc.mu.Lock()
	ok := cc.peer.extendedConnect
	cc.mu.Unlock()
	if !ok {
		return nil, ErrNoExtendedConnect
	}
	s, err := cc.openStream(ctx, []hpack.HeaderField{
		{Name: ":method", Value: http.MethodConnect},
		{Name: ":protocol", Value: ProtocolConnectUDP},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: authority},
		{Name: ":path", Value: UDPPath(t.Host, t.Port)},
		{Name: "capsule-protocol", Value: "?1"},
		{Name: "zt-app", Value: t.AppID},
	})
	if err != nil {
		return nil, err
	}
	status, h, err := s.awaitResponse(ctx)
	if err == nil && (status < 200 || status > 299) {
		err = &RefusedError{Status: status, Reason: h.Get(HeaderReason)}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (cc *ClientConn) newStreamErr() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if err := cc.newStreamErrLocked(); err != nil {
		return err
	}
	return ErrConnClosed
}

// OpenUDP opens a UDP flow to t (t.Proto is taken as UDP) as Open does a TCP
// one. Each Write of the returned conn is one datagram to the target and each
// Read one datagram from it.
func (c *Client) OpenUDP(ctx context.Context, t Target) (*DatagramConn, error) {
	t.Proto = ProtoUDP
	if t.Host == "" || t.Port == 0 {
		return nil, fmt.Errorf("l7: open %q: %w", t.Authority(), ErrBadTarget)
	}
	tc := c.cur.Load()
	if tc == nil || !tc.cc.CanTakeNewRequest() {
		return nil, ErrNotConnected
	}
	st, err := tc.cc.ConnectUDP(ctx, tc.addr, t)
	if err != nil {
		return nil, c.requestError(tc, "open "+t.String(), err)
	}
	c.streams.Add(1)
	return streamDatagrams(st, c.streamClosed), nil
}

// streamDatagrams is the client end of a connect-udp stream; onClose runs
// once, after the stream's reset.
func streamDatagrams(s *Stream, onClose func()) *DatagramConn {
	return &DatagramConn{cr: capsuleReader{r: s}, w: s, wait: s.WaitRead, close: func() error {
		s.Close()
		onClose()
		return nil
	}}
}

// DatagramConn is one UDP flow over a stream of DATAGRAM capsules: the agent's
// (from Client.OpenUDP) or the publisher's (ServerDatagrams). Read returns one
// datagram (truncated to the buffer), Write sends one; each may be called by
// one goroutine at a time, concurrently with the other (WaitRead on Read's).
// Deadlines are not supported; Close ends the flow and unblocks Read.
type DatagramConn struct {
	w     io.Writer
	flush func() error // nil: none
	wait  func() error // nil: none
	close func() error

	rmu     sync.Mutex // Read and WaitRead
	cr      capsuleReader
	dropped atomic.Uint64

	wmu       sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

// ServerDatagrams is the serving end of a connect-udp request the handler
// accepted (see Accept): datagrams from the request body, to the response.
func ServerDatagrams(w http.ResponseWriter, body io.ReadCloser) *DatagramConn {
	return &DatagramConn{cr: capsuleReader{r: body}, w: w, flush: Flusher(w), wait: BodyWaiter(body), close: body.Close}
}

// Read reads the next datagram into p. It returns io.EOF when the peer ended
// the flow, and ErrMalformedCapsule (wrapped) when the peer broke the framing.
func (c *DatagramConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	var dropped uint64
	n, err := c.cr.readDatagram(p, &dropped)
	if dropped > 0 {
		c.dropped.Add(dropped)
	}
	return n, err
}

// WaitRead returns once a Read would not block on the stream's first byte
// (flowio.ReadWaiter): an idle flow waits without a buffer.
func (c *DatagramConn) WaitRead() error {
	c.rmu.Lock()
	buffered := c.cr.buffered()
	c.rmu.Unlock()
	if c.wait == nil || buffered {
		return nil
	}
	return c.wait()
}

// Write sends p as one datagram. A datagram above MaxDatagram is dropped with
// ErrDatagramTooLarge and the flow goes on.
func (c *DatagramConn) Write(p []byte) (int, error) {
	if len(p) > MaxDatagram {
		c.dropped.Add(1)
		return 0, ErrDatagramTooLarge
	}
	if _, err := c.WriteBatch([][]byte{p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteBatch sends each of ps as one datagram, several capsules to a write
// (one DATA frame, one flush), and returns how many it sent or dropped as
// too large (counted in Dropped).
func (c *DatagramConn) WriteBatch(ps [][]byte) (int, error) {
	bp := capsuleBufs.Get().(*[]byte)
	defer capsuleBufs.Put(bp)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, first := (*bp)[:0], 0 // first: the first datagram in b
	for i, p := range ps {
		if len(p) > MaxDatagram {
			c.dropped.Add(1)
			continue
		}
		if len(b)+maxCapsuleHeader+len(p) > cap(b) {
			if err := c.writeLocked(b); err != nil {
				return first, err
			}
			b, first = b[:0], i
		}
		b, _ = AppendDatagram(b, p)
	}
	if err := c.writeLocked(b); err != nil {
		return first, err
	}
	return len(ps), nil
}

func (c *DatagramConn) writeLocked(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	if c.flush != nil {
		return c.flush()
	}
	return nil
}

// Dropped counts the datagrams dropped as too large, both ways.
func (c *DatagramConn) Dropped() uint64 { return c.dropped.Load() }

// Close ends the flow (a reset of the agent's stream; on the serving side,
// the end of the request body). It is idempotent.
func (c *DatagramConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}
