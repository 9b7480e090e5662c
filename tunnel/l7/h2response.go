package l7

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// responseWriter is the http.ResponseWriter of a Server's request. Its
// writes go out at once, DATA framed straight from the handler's bytes, so
// Flush only sends the header when nothing else has.
type responseWriter struct {
	s           *Stream
	header      http.Header
	wroteHeader bool
}

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sends the response's header block. Informational codes
// (1xx) may precede the final one; later calls are ignored.
func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("l7: invalid WriteHeader code %d", code))
	}
	fields := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(code)}}
	for k, vv := range w.header {
		k = strings.ToLower(k)
		switch k {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			continue // connection-specific: not in HTTP/2
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				fields = append(fields, hpack.HeaderField{Name: k, Value: v})
			}
		}
	}
	w.wroteHeader = code >= 200
	w.s.writeHeader(fields) // a failure shows in the next Write
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.s.Write(p)
}

// Flush sends the header if it is not sent yet (http.Flusher).
func (w *responseWriter) Flush() { w.FlushError() }

// FlushError is Flush, with the stream's error once it failed.
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.s.cc.mu.Lock()
	defer w.s.cc.mu.Unlock()
	return w.s.writeErr
}

// CloseWrite ends the response (END_STREAM) while the handler may go on
// reading the request body.
func (w *responseWriter) CloseWrite() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.s.CloseWrite()
}

// finish ends the response of a handler that returned, and abandons the
// request body if the peer is still sending it.
func (w *responseWriter) finish() {
	s, cc := w.s, w.s.cc
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	cc.mu.Lock()
	ended := s.wroteEnd || s.writeErr != nil
	cc.mu.Unlock()
	if !ended {
		s.CloseWrite()
	}
	cc.mu.Lock()
	open := cc.streams[s.id] == s
	cc.mu.Unlock()
	if open {
		s.reset(http2.ErrCodeNo) // NO_ERROR: the response is complete, the rest of the request is unwanted
	}
}

// CloseResponse ends the response of a request that a Server serves
// (END_STREAM), as a half-close: the handler may go on reading the request
// body until it ends. Other response writers cannot do this and get an error.
func CloseResponse(w http.ResponseWriter) error {
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("l7: this response writer cannot end its response early")
}

// writeHeader sends a header block on the stream, unless it was reset.
func (s *Stream) writeHeader(fields []hpack.HeaderField) error {
	cc := s.cc
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	cc.mu.Lock()
	err := s.writeErrLocked()
	maxFrame := int(cc.peer.maxFrame)
	cc.mu.Unlock()
	if err != nil {
		return err
	}
	return cc.writeHeaders(s.id, fields, maxFrame)
}

// serverBody is a Server's request body: the stream's received data, read
// from the chunks it arrived in (flowio.BufferedReader, flowio.ReadWaiter).
type serverBody struct{ s *Stream }

var errBodyClosed = errors.New("l7: read on a closed request body")

func (b *serverBody) Read(p []byte) (int, error) { return b.s.Read(p) }

func (b *serverBody) WaitRead() error { return b.s.WaitRead() }

func (b *serverBody) WriteBufferedTo(w io.Writer) (int, error, error) {
	return b.s.WriteBufferedTo(w)
}

// Close drops what is buffered and what arrives later; reads fail from
// then on, and a read waiting returns.
func (b *serverBody) Close() error {
	s, cc := b.s, b.s.cc
	cc.mu.Lock()
	s.bodyClosed = true
	if !s.readEOF && s.readErr == nil {
		s.readErr = errBodyClosed
	}
	dropped := s.rbuf.discard()
	s.rcond.Broadcast()
	cc.mu.Unlock()
	cc.returnWindow(nil, dropped)
	return nil
}
