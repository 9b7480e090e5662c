package l7

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// xnetServer returns x/net's HTTP/2 server with the settings of the wire, the
// reference the client is checked against.
func xnetServer() *http2.Server {
	return &http2.Server{
		MaxConcurrentStreams:         maxStreamsPerConn,
		MaxReadFrameSize:             maxFrameSize,
		MaxUploadBufferPerConnection: connWindow,
		MaxUploadBufferPerStream:     streamWindow,
	}
}

// h2Server serves h on loopback connections with x/net's HTTP/2 server (no TLS)
// and returns a ClientConn to it; both are closed by the test's cleanup.
func h2Server(t *testing.T, srv *http2.Server, h http.HandlerFunc) *ClientConn {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) { srv.ServeConn(c, &http2.ServeConnOpts{Handler: h}) })
}

// l7Server is h2Server with Server.
func l7Server(t *testing.T, h http.HandlerFunc) *ClientConn {
	t.Helper()
	var srv Server
	log := zaptest.NewLogger(t)
	return serveLoopback(t, func(c net.Conn) { srv.ServeConn(context.Background(), c, log, h) })
}

// serveLoopback serves loopback connections with serve and returns a
// ClientConn to one; both are closed by the test's cleanup.
func serveLoopback(t *testing.T, serve func(net.Conn)) *ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
				c.Close()
			}()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := NewClientConn(c, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		ln.Close()
		wg.Wait()
	})
	return cc
}

// echoHandler answers CONNECT with 200 and echoes the body, as a publisher
// relays to an echo server.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(HeaderApp) == "denied" {
		Refuse(w, http.StatusForbidden, "not for you")
		return
	}
	w.WriteHeader(http.StatusOK)
	flush := Flusher(w)
	flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			flush()
		}
		if err != nil {
			return
		}
	}
}

var echoTarget = Target{Host: "echo.test", Port: 7, AppID: "echo"}

func TestStreamEcho(t *testing.T) {
	cc := h2Server(t, xnetServer(), echoHandler)
	s, err := cc.Connect(context.Background(), echoTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := io.WriteString(s, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v; want hello", got, err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, errWriteEnded) {
		t.Errorf("Write after CloseWrite: %v", err)
	}
	if s.rbuf.bufs != nil {
		t.Error("a drained stream still holds chunks")
	}
	cc.mu.Lock()
	open := len(cc.streams)
	cc.mu.Unlock()
	if open != 0 {
		t.Errorf("%d streams open after both ends ended", open)
	}
}

func TestStreamRefused(t *testing.T) {
	cc := h2Server(t, xnetServer(), echoHandler)
	denied := echoTarget
	denied.AppID = "denied"
	_, err := cc.Connect(context.Background(), denied)
	var re *RefusedError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || re.Reason != "not for you" {
		t.Fatalf("Connect: %v, want 403 not for you", err)
	}
}

// TestStreamFlowControl moves more than every window through several streams at
// once against a server with small windows, so that both ends wait for
// WINDOW_UPDATEs, and checks every byte.
func TestStreamFlowControl(t *testing.T) {
	srv := xnetServer()
	srv.MaxUploadBufferPerStream = 64 << 10
	srv.MaxUploadBufferPerConnection = 128 << 10
	srv.MaxReadFrameSize = 16 << 10
	cc := h2Server(t, srv, echoHandler)
	const streams, size = 4, 4 << 20
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoThrough(cc, size, byte(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func echoThrough(cc *ClientConn, size int, fill byte) error {
	s, err := cc.Connect(context.Background(), echoTarget)
	if err != nil {
		return err
	}
	defer s.Close()
	data := make([]byte, size)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(s)
	if err := errors.Join(err, <-werr); err != nil {
		return fmt.Errorf("stream %d: %w", fill, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("stream %d: echoed %d bytes, not the %d sent", fill, len(got), size)
	}
	return nil
}

// TestStreamSlots: past the server's MAX_CONCURRENT_STREAMS a new stream waits
// for a slot, within its context.
func TestStreamSlots(t *testing.T) {
	srv := xnetServer()
	srv.MaxConcurrentStreams = 1
	cc := h2Server(t, srv, echoHandler)
	first, err := cc.Connect(context.Background(), echoTarget)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := cc.Connect(ctx, echoTarget); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Connect with the slot taken: %v, want DeadlineExceeded", err)
	}
	got := make(chan error, 1)
	go func() {
		s, err := cc.Connect(context.Background(), echoTarget)
		if err == nil {
			s.Close()
		}
		got <- err
	}()
	first.Close()
	if err := <-got; err != nil {
		t.Fatalf("Connect once the slot was free: %v", err)
	}
}

// TestStreamReset: a handler that aborts resets the stream: the client reads
// an error, not EOF.
func TestStreamReset(t *testing.T) {
	cc := h2Server(t, xnetServer(), func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		Flusher(w)()
		r.Body.Read(make([]byte, 1))
		panic(http.ErrAbortHandler)
	})
	s, err := cc.Connect(context.Background(), echoTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write([]byte("x"))
	var se http2.StreamError
	if _, err := io.ReadAll(s); !errors.As(err, &se) {
		t.Fatalf("read after the reset: %v, want a StreamError", err)
	}
}

// fakePeer is the server end of a connection driven frame by frame.
type fakePeer struct {
	t  *testing.T
	c  net.Conn
	fr *http2.Framer
}

// newFakePeer returns a ClientConn connected to a fakePeer that has read the
// client's preface and answered its SETTINGS.
func newFakePeer(t *testing.T, ka keepalive) (*ClientConn, *fakePeer) {
	t.Helper()
	a, b := tcpPair(t)
	p := &fakePeer{t: t, c: b, fr: http2.NewFramer(b, b)}
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	ready := make(chan error, 1)
	go func() {
		preface := make([]byte, len(http2.ClientPreface))
		_, err := io.ReadFull(b, preface)
		if err == nil {
			err = p.fr.WriteSettings()
		}
		ready <- err
	}()
	cc, err := newClientConn(a, zaptest.NewLogger(t), ka)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		cc.Close()
	})
	return cc, p
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	return a, b
}

// next returns the next frame of the given type, skipping others.
func (p *fakePeer) next(want http2.FrameType) http2.Frame {
	p.t.Helper()
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.t.Fatalf("peer: waiting for %v: %v", want, err)
		}
		if f.Header().Type == want {
			return f
		}
	}
}

// TestGoAway: streams above the peer's last stream ID fail at once and no new
// stream is opened; the others carry on to their end.
func TestGoAway(t *testing.T) {
	cc, p := newFakePeer(t, keepalive{idle: time.Hour, timeout: time.Hour})
	type result struct {
		s   *Stream
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			s, err := cc.Connect(context.Background(), echoTarget)
			results <- result{s, err}
		}()
		p.next(http2.FrameHeaders)
	}
	p.fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	if r := <-results; !errors.Is(r.err, errGoAway) {
		t.Fatalf("stream 3 after GOAWAY(1): %v, want errGoAway", r.err)
	}
	if cc.CanTakeNewRequest() {
		t.Error("CanTakeNewRequest after GOAWAY")
	}
	var enc bytes.Buffer
	hpack.NewEncoder(&enc).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc.Bytes(), EndHeaders: true})
	p.fr.WriteData(1, true, []byte("done"))
	r := <-results
	if r.err != nil {
		t.Fatalf("stream 1 after GOAWAY(1): %v", r.err)
	}
	defer r.s.Close()
	if got, err := io.ReadAll(r.s); err != nil || string(got) != "done" {
		t.Fatalf("stream 1 read %q, %v", got, err)
	}
}

// TestKeepalive: a silent connection is pinged; a peer that answers keeps it,
// one that does not loses it.
func TestKeepalive(t *testing.T) {
	cc, p := newFakePeer(t, keepalive{idle: 20 * time.Millisecond, timeout: 50 * time.Millisecond})
	ping := p.next(http2.FramePing).(*http2.PingFrame)
	if ping.IsAck() {
		t.Fatal("first PING is an ack")
	}
	p.fr.WritePing(true, ping.Data)
	p.next(http2.FramePing) // pinged again after the next silence: still alive
	select {
	case <-cc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection alive with a PING unanswered")
	}
	if _, err := cc.Connect(context.Background(), echoTarget); !errors.Is(err, errPing) {
		t.Fatalf("Connect on the dead connection: %v, want errPing", err)
	}
}

// TestPing: a Ping the peer answers returns nil; one it does not fails the
// connection within the timeout. Silence counts from the last frame.
func TestPing(t *testing.T) {
	cc, p := newFakePeer(t, keepalive{idle: time.Hour, timeout: time.Hour})
	answered := make(chan error, 1)
	go func() { answered <- cc.Ping(5 * time.Second) }()
	ping := p.next(http2.FramePing).(*http2.PingFrame)
	p.fr.WritePing(true, ping.Data)
	if err := <-answered; err != nil {
		t.Fatalf("Ping answered: %v", err)
	}
	if d := cc.Silence(); d > time.Second {
		t.Errorf("Silence %v right after a frame", d)
	}
	start := time.Now()
	if err := cc.Ping(50 * time.Millisecond); !errors.Is(err, errPing) {
		t.Fatalf("Ping unanswered: %v, want errPing", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("unanswered Ping took %v", took)
	}
	<-cc.Done()
}

// TestDrain: after GOAWAY a connection takes no new stream; Drain's channel
// is closed when the last open stream ends, not before.
func TestDrain(t *testing.T) {
	cc, p := newFakePeer(t, keepalive{idle: time.Hour, timeout: time.Hour})
	opened := make(chan *Stream, 1)
	go func() {
		s, err := cc.Connect(context.Background(), echoTarget)
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	p.next(http2.FrameHeaders)
	var enc bytes.Buffer
	hpack.NewEncoder(&enc).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc.Bytes(), EndHeaders: true})
	s := <-opened
	p.fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	select {
	case <-cc.GoingAway():
	case <-time.After(10 * time.Second):
		t.Fatal("GoingAway not closed after GOAWAY")
	}
	drained := cc.Drain()
	select {
	case <-drained:
		t.Fatal("drained with a stream open")
	case <-time.After(50 * time.Millisecond):
	}
	s.Close()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("not drained after the last stream closed")
	}
}
