package l7

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// Server serves HTTP/2 connections with an http.Handler: the PoP's to devices
// and the publisher's to the PoP. It runs on the connection code of
// ClientConn (flow control, stream buffers, the write path), with the roles
// swapped: the peer opens the streams, and each request runs its handler on a
// goroutine of its own. Unlike x/net's server it lets a handler end its
// response (CloseResponse) and go on reading the request body, so that a
// half-close travels through a relay; and a request body is read from the
// chunks DATA arrived in, with no pipe between the connection and the handler.
//
// The settings are those of the shared wire: 1 MiB frames, windows of 16 MiB
// per stream and 64 MiB per connection, maxStreamsPerConn concurrent streams,
// extended CONNECT (RFC 8441) announced, a PING after ReadIdle of silence.
// The zero Server is ready to serve.
type Server struct {
	mu       sync.Mutex
	conns    map[*ClientConn]struct{}
	shutdown bool
}

// serverSide is the server end's part of a connection. lastID and
// handlers are guarded by the connection's mu; gotSettings is the read
// loop's.
type serverSide struct {
	ctx         context.Context // parent of the requests' contexts
	handler     http.Handler
	remote      string
	lastID      uint32 // the highest stream ID the peer opened
	handlers    int    // handlers running, reset streams included
	gotSettings bool
}

// serverSettings are the server end's SETTINGS.
var serverSettings = []http2.Setting{
	{ID: http2.SettingMaxConcurrentStreams, Val: maxStreamsPerConn},
	{ID: http2.SettingInitialWindowSize, Val: streamWindow},
	{ID: http2.SettingMaxFrameSize, Val: maxFrameSize},
	{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList},
	{ID: http2.SettingEnableConnectProtocol, Val: 1},
}

// maxHandlers bounds the handlers of one connection, those of streams the
// peer reset included: a peer that opens and resets streams in a loop (the
// "rapid reset" flood) gets REFUSED_STREAM, not a goroutine per stream.
const maxHandlers = 2 * maxStreamsPerConn

var errBadPreface = errors.New("l7: bad HTTP/2 client preface")

// ServeConn serves HTTP/2 on c (a connection whose TLS handshake is done)
// with h until the connection ends, and closes it; the connection's events
// go to log (nil: nowhere). The requests' contexts derive
// from ctx; they are canceled when their stream is reset, when the
// connection is lost and when their handler returns. ServeConn does not
// wait for the handlers.
func (srv *Server) ServeConn(ctx context.Context, c net.Conn, log *zap.Logger, h http.Handler) error {
	ss := &serverSide{ctx: ctx, handler: h, remote: c.RemoteAddr().String()}
	cc, err := newConn(c, log, keepalive{idle: ReadIdle, timeout: pingTimeout}, ss)
	if err != nil {
		return err
	}
	srv.mu.Lock()
	if srv.conns == nil {
		srv.conns = make(map[*ClientConn]struct{})
	}
	srv.conns[cc] = struct{}{}
	shutdown := srv.shutdown
	srv.mu.Unlock()
	if shutdown {
		cc.goAwayServer()
	}
	<-cc.Done()
	cc.Close()
	srv.mu.Lock()
	delete(srv.conns, cc)
	srv.mu.Unlock()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

// Shutdown sends GOAWAY on every connection, and on those served later:
// the peer opens no new stream on them, the streams open go on, and each
// connection is closed once its last stream has ended. It returns at once.
func (srv *Server) Shutdown() {
	srv.mu.Lock()
	srv.shutdown = true
	conns := make([]*ClientConn, 0, len(srv.conns))
	for cc := range srv.conns {
		conns = append(conns, cc)
	}
	srv.mu.Unlock()
	for _, cc := range conns {
		cc.goAwayServer()
	}
}

// goAwayServer sends GOAWAY(NO_ERROR) with the last stream the peer opened,
// refuses streams from then on, and closes the connection once none is open.
func (cc *ClientConn) goAwayServer() {
	cc.mu.Lock()
	if cc.draining {
		cc.mu.Unlock()
		return
	}
	cc.draining = true
	last := cc.srv.lastID
	cc.mu.Unlock()
	cc.wmu.Lock()
	cc.flushFrame(cc.fr.WriteGoAway(last, http2.ErrCodeNo, nil))
	cc.wmu.Unlock()
	drained := cc.Drain()
	go func() {
		select {
		case <-drained:
			cc.Close()
		case <-cc.readDone:
		}
	}()
}

// lastPeerStream is the last stream the peer opened, for GOAWAY: on a client,
// none (we refuse push).
func (cc *ClientConn) lastPeerStream() uint32 {
	if cc.srv == nil {
		return 0
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.srv.lastID
}

// readPreface reads the client's connection preface, on a server.
func (cc *ClientConn) readPreface() error {
	if cc.srv == nil {
		return nil
	}
	var b [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(cc.conn, b[:]); err != nil {
		return fmt.Errorf("l7: read the client preface: %w", err)
	}
	if string(b[:]) != http2.ClientPreface {
		return errBadPreface
	}
	return nil
}

// checkFirstFrame enforces, on a server, that the client's preface goes on
// with SETTINGS (RFC 9113 §3.4).
func (cc *ClientConn) checkFirstFrame(fh http2.FrameHeader) error {
	if cc.srv == nil || cc.srv.gotSettings {
		return nil
	}
	if fh.Type != http2.FrameSettings || fh.Flags.Has(http2.FlagSettingsAck) {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	cc.srv.gotSettings = true
	return nil
}

// onRequest handles a header block on a server: a new request, or the
// trailers that end a request body.
func (cc *ClientConn) onRequest(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	refused := http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	cc.mu.Lock()
	if s := cc.streams[id]; s != nil {
		defer cc.mu.Unlock()
		if !f.StreamEnded() || s.readEOF || len(f.PseudoFields()) > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		s.endReadLocked()
		return nil
	}
	switch {
	case id%2 == 0:
		cc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol)
	case id <= cc.srv.lastID:
		// A stream that is over (we may have reset it as this was sent):
		// the block was decoded, which keeps HPACK in step; drop it.
		cc.mu.Unlock()
		return nil
	}
	cc.srv.lastID = id
	if cc.draining || cc.err != nil || cc.active >= maxStreamsPerConn || cc.srv.handlers >= maxHandlers {
		cc.mu.Unlock()
		return refused
	}
	req, err := newRequest(f, cc.srv.remote)
	if err != nil {
		cc.mu.Unlock()
		return err
	}
	ctx, cancel := context.WithCancel(cc.srv.ctx)
	s := &Stream{
		cc: cc, id: id, recvAvail: streamWindow, sendWindow: cc.peer.initialWindow,
		peerHead: true, respDone: true, cancel: cancel, readEOF: f.StreamEnded(),
	}
	s.rcond.L = &cc.mu
	cc.streams[id] = s
	cc.active++
	cc.srv.handlers++
	cc.mu.Unlock()
	req = req.WithContext(ctx)
	req.Body = &serverBody{s: s}
	go cc.serve(s, req)
	return nil
}

// serve runs the handler of a request, then ends its response: END_STREAM
// after what it wrote, or RST_STREAM if it panicked. A request body not
// read to its end is then abandoned with RST_STREAM(NO_ERROR) (RFC 9113
// §8.1), and only then: a handler that ended its response early
// (CloseResponse) reads the body as long as it likes.
func (cc *ClientConn) serve(s *Stream, req *http.Request) {
	w := &responseWriter{s: s, header: make(http.Header)}
	defer func() {
		if e := recover(); e != nil {
			if e != http.ErrAbortHandler {
				cc.log.Error("handler panicked", zap.Any("panic", e), zap.ByteString("stack", debug.Stack()))
			}
			s.reset(http2.ErrCodeInternal)
		} else {
			w.finish()
		}
		s.cancel()
		cc.mu.Lock()
		cc.srv.handlers--
		cc.mu.Unlock()
	}()
	cc.srv.handler.ServeHTTP(w, req)
}

// newRequest makes the request of a header block, checked as RFC 9113 §8.3
// and RFC 8441 §4 ask; a malformed one is a stream error.
func newRequest(f *http2.MetaHeadersFrame, remote string) (*http.Request, error) {
	bad := http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
	method, path := f.PseudoValue("method"), f.PseudoValue("path")
	scheme, authority, protocol := f.PseudoValue("scheme"), f.PseudoValue("authority"), f.PseudoValue("protocol")
	connect := method == http.MethodConnect
	switch {
	case f.Truncated || method == "":
		return nil, bad
	case protocol != "":
		if !connect || path == "" || scheme == "" || authority == "" {
			return nil, bad
		}
	case connect:
		if path != "" || scheme != "" || authority == "" {
			return nil, bad
		}
	case path == "" || scheme == "":
		return nil, bad
	}
	fields := f.RegularFields()
	header := make(http.Header, len(fields)+1)
	for _, hf := range fields {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return nil, bad
		case "te":
			if hf.Value != "trailers" {
				return nil, bad
			}
		}
		header.Add(http.CanonicalHeaderKey(hf.Name), hf.Value)
	}
	u, uri := &url.URL{Host: authority}, authority
	if protocol != "" {
		// As x/net's server, which the handlers were written for, shows it.
		header[":protocol"] = []string{protocol}
	}
	if !connect || protocol != "" {
		var err error
		if u, err = url.ParseRequestURI(path); err != nil {
			return nil, bad
		}
		uri = path
	}
	host := authority
	if host == "" {
		host = header.Get("Host")
	}
	length := int64(-1)
	if f.StreamEnded() {
		length = 0
	} else if v := header.Get("Content-Length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, bad
		}
		length = n
	}
	return &http.Request{
		Method: method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2,
		Header: header, ContentLength: length, Host: host, RequestURI: uri, RemoteAddr: remote,
	}, nil
}
