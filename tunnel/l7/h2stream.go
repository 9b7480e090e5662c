package l7

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Stream is one request and its response on a ClientConn: a flow's CONNECT
// stream or a DNS query. Write sends the request body and CloseWrite ends it
// (END_STREAM); Read returns the response body. An idle stream holds no buffer:
// received data waits in pooled chunks until it is read, and WaitRead waits for
// data without one.
type Stream struct {
	cc *ClientConn
	id uint32

	wmu sync.Mutex // one Write or CloseWrite at a time, so that data keeps its order

	// Guarded by cc.mu.
	rcond      sync.Cond // (L = &cc.mu) woken by data, the end, or an error
	sendWindow int64
	recvAvail  int64
	recvUnsent int64
	rbuf       chunks
	readEOF    bool  // END_STREAM received
	bodyClosed bool  // on a server, the handler closed the request body: later DATA is dropped
	readErr    error // reads fail with it once what was received is read
	wroteEnd   bool  // END_STREAM sent
	writeErr   error
	status     int         // of the response; 0 until its headers arrive
	peerHead   bool        // the peer's header block (response, or request on a server) arrived
	cancel     func()      // on a server, cancels the request's context; nil on a client
	header     http.Header // of the response, until the opener takes it
	respDone   bool        // respc is closed
	respc      chan struct{}
}

var errWriteEnded = errors.New("l7: write after the end of the stream")

// openStream waits for a stream slot (within ctx), then sends the request's
// header block on a new stream.
func (cc *ClientConn) openStream(ctx context.Context, fields []hpack.HeaderField) (*Stream, error) {
	for _, f := range fields {
		if !httpguts.ValidHeaderFieldValue(f.Value) {
			return nil, errors.New("l7: invalid value for header " + f.Name)
		}
	}
	cc.mu.Lock()
	stop := context.AfterFunc(ctx, func() {
		cc.mu.Lock()
		cc.wcond.Broadcast()
		cc.mu.Unlock()
	})
	defer stop()
	for {
		if err := cc.newStreamErrLocked(); err != nil {
			cc.mu.Unlock()
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			cc.mu.Unlock()
			return nil, err
		}
		if cc.active < int(cc.peer.maxStreams) {
			break
		}
		cc.wcond.Wait()
	}
	cc.active++
	s := &Stream{cc: cc, recvAvail: streamWindow, respc: make(chan struct{})}
	s.rcond.L = &cc.mu
	cc.mu.Unlock()

	// Stream IDs must reach the peer in increasing order: the ID is taken
	// under the write lock that sends the header block.
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	cc.mu.Lock()
	if err := cc.newStreamErrLocked(); err != nil {
		if cc.err == nil { // fail already reset the count
			cc.active--
			cc.checkDrainedLocked()
		}
		cc.mu.Unlock()
		return nil, err
	}
	s.id = cc.nextID
	cc.nextID += 2
	s.sendWindow = cc.peer.initialWindow
	maxFrame := int(cc.peer.maxFrame)
	cc.streams[s.id] = s
	cc.mu.Unlock()
	if err := cc.writeHeaders(s.id, fields, maxFrame); err != nil {
		return nil, err
	}
	return s, nil
}

func (cc *ClientConn) newStreamErrLocked() error {
	switch {
	case cc.err != nil:
		return cc.err
	case cc.goAway, cc.draining, cc.nextID >= maxStreamID:
		return errGoAway
	}
	return nil
}

// writeHeaders encodes a header block and sends it as HEADERS and, past the
// peer's frame size, CONTINUATION frames. The caller holds wmu.
func (cc *ClientConn) writeHeaders(id uint32, fields []hpack.HeaderField, maxFrame int) error {
	cc.hbuf.Reset()
	for _, f := range fields {
		cc.henc.WriteField(f)
	}
	block := cc.hbuf.Bytes()
	var err error
	for first := true; err == nil && (first || len(block) > 0); first = false {
		frag := block[:min(len(block), maxFrame)]
		block = block[len(frag):]
		if first {
			err = cc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndHeaders: len(block) == 0})
		} else {
			err = cc.fr.WriteContinuation(id, len(block) == 0, frag)
		}
	}
	return cc.flushFrame(err)
}

// writeData sends one DATA frame straight from p, without the Framer's copy.
func (cc *ClientConn) writeData(id uint32, end bool, p []byte) error {
	hdr := [9]byte{byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p)), byte(http2.FrameData), 0,
		byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	if end {
		hdr[4] = byte(http2.FlagDataEndStream)
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	_, err := cc.bw.Write(hdr[:])
	if err == nil {
		_, err = cc.bw.Write(p)
	}
	return cc.flushFrame(err)
}

// awaitResponse waits for the response's headers and returns its status and
// header; the stream no longer holds them.
func (s *Stream) awaitResponse(ctx context.Context) (int, http.Header, error) {
	select {
	case <-s.respc:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	s.cc.mu.Lock()
	defer s.cc.mu.Unlock()
	if s.status == 0 {
		return 0, nil, s.readErr
	}
	h := s.header
	s.header = nil
	return s.status, h, nil
}

func (cc *ClientConn) onHeaders(f *http2.MetaHeadersFrame) error {
	if cc.srv != nil {
		return cc.onRequest(f)
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	s, err := cc.streamLocked(f.StreamID)
	if s == nil {
		return err
	}
	protoErr := http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
	if s.status != 0 {
		// Trailers: they end the stream; we have no use for them.
		if !f.StreamEnded() {
			return protoErr
		}
		s.endReadLocked()
		return nil
	}
	status, err := strconv.Atoi(f.PseudoValue("status"))
	switch {
	case err != nil || status < 100 || status > 999 || f.Truncated:
		return protoErr
	case status < 200:
		if f.StreamEnded() {
			return protoErr
		}
		return nil // informational: the final answer follows
	}
	s.status = status
	s.peerHead = true
	fields := f.RegularFields()
	s.header = make(http.Header, len(fields))
	for _, hf := range fields {
		s.header.Add(http.CanonicalHeaderKey(hf.Name), hf.Value)
	}
	s.respDone = true
	close(s.respc)
	if f.StreamEnded() {
		s.endReadLocked()
	}
	return nil
}

// endReadLocked records END_STREAM from the peer.
func (s *Stream) endReadLocked() {
	s.readEOF = true
	s.rcond.Broadcast()
	if s.wroteEnd {
		s.cc.forgetLocked(s)
	}
}

// failLocked ends the stream with errors for its reads (after what was
// received; nil keeps a clean end) and writes, and wakes everyone waiting on it.
func (s *Stream) failLocked(readErr, writeErr error) {
	if readErr != nil && s.readErr == nil && !s.readEOF {
		s.readErr = readErr
	}
	if s.writeErr == nil {
		s.writeErr = writeErr
	}
	if !s.respDone {
		s.respDone = true
		close(s.respc)
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.rcond.Broadcast()
	s.cc.wcond.Broadcast()
}

// Read reads the response body. It returns io.EOF at the end of the stream
// and the stream's error after a reset or the loss of the connection.
func (s *Stream) Read(p []byte) (int, error) {
	cc := s.cc
	cc.mu.Lock()
	s.waitLocked()
	if s.rbuf.n > 0 {
		n := s.rbuf.read(p)
		cc.mu.Unlock()
		cc.returnWindow(s, n)
		return n, nil
	}
	err := s.readErr
	cc.mu.Unlock()
	if err == nil {
		err = io.EOF
	}
	return 0, err
}

// WriteBufferedTo writes the data received so far to w, from the chunks it
// arrived in, once some is waiting (flowio.BufferedReader). With none left it
// returns the stream's end (io.EOF) or error as readErr.
func (s *Stream) WriteBufferedTo(w io.Writer) (n int, readErr, writeErr error) {
	cc := s.cc
	cc.mu.Lock()
	s.waitLocked()
	if s.rbuf.n == 0 {
		err := s.readErr
		cc.mu.Unlock()
		if err == nil {
			err = io.EOF
		}
		return 0, err, nil
	}
	data := s.rbuf
	s.rbuf = chunks{}
	cc.mu.Unlock()
	for i, b := range data.bufs {
		if writeErr == nil {
			p := b
			if i == 0 {
				p = b[data.r:]
			}
			var m int
			m, writeErr = w.Write(p)
			n += m
		}
		putChunk(b)
	}
	cc.returnWindow(s, data.n)
	return n, nil, writeErr
}

// WaitRead returns once a Read would not block (flowio.ReadWaiter); the Read
// reports the stream's end or error.
func (s *Stream) WaitRead() error {
	s.cc.mu.Lock()
	s.waitLocked()
	s.cc.mu.Unlock()
	return nil
}

func (s *Stream) waitLocked() {
	for s.rbuf.n == 0 && !s.readEOF && s.readErr == nil {
		s.rcond.Wait()
	}
}

// Write sends p as DATA, as fast as the peer's flow-control windows allow.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cc := s.cc
	n := 0
	for len(p) > 0 {
		cc.mu.Lock()
		var take int64
		for {
			if err := s.writeErrLocked(); err != nil {
				cc.mu.Unlock()
				return n, err
			}
			take = min(int64(len(p)), s.sendWindow, cc.sendWindow, int64(cc.peer.maxFrame))
			if take > 0 {
				break
			}
			cc.wcond.Wait()
		}
		s.sendWindow -= take
		cc.sendWindow -= take
		cc.mu.Unlock()
		if err := cc.writeData(s.id, false, p[:take]); err != nil {
			return n, err
		}
		n += int(take)
		p = p[take:]
	}
	return n, nil
}

func (s *Stream) writeErrLocked() error {
	switch {
	case s.writeErr != nil:
		return s.writeErr
	case s.wroteEnd:
		return errWriteEnded
	}
	return nil
}

// CloseWrite ends the request body: the peer sees END_STREAM.
func (s *Stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cc := s.cc
	cc.mu.Lock()
	if err := s.writeErrLocked(); err != nil {
		cc.mu.Unlock()
		return err
	}
	s.wroteEnd = true
	cc.mu.Unlock()
	err := cc.writeData(s.id, true, nil)
	cc.mu.Lock()
	if s.readEOF {
		cc.forgetLocked(s)
	}
	cc.mu.Unlock()
	return err
}

// Close ends the stream, with RST_STREAM(CANCEL) unless it had ended in both
// directions. Reads and writes then fail with net.ErrClosed; unread data is
// discarded. It is idempotent.
func (s *Stream) Close() error {
	return s.reset(http2.ErrCodeCancel)
}

// reset is Close with RST_STREAM(code).
func (s *Stream) reset(code http2.ErrCode) error {
	cc := s.cc
	cc.mu.Lock()
	open := cc.streams[s.id] == s
	s.failLocked(net.ErrClosed, net.ErrClosed)
	cc.mu.Unlock()
	if open {
		// The RST_STREAM goes out before the stream's slot is freed: a
		// stream waiting for the slot must not reach the peer first, over
		// its MAX_CONCURRENT_STREAMS (which it answers PROTOCOL_ERROR).
		cc.wmu.Lock()
		cc.flushFrame(cc.fr.WriteRSTStream(s.id, code))
		cc.wmu.Unlock()
	}
	cc.mu.Lock()
	cc.forgetLocked(s)
	discarded := s.rbuf.discard() // with what arrived meanwhile
	cc.mu.Unlock()
	cc.returnWindow(nil, discarded)
	return nil
}

// Connect opens a CONNECT stream to t and waits, within ctx, for the peer's
// answer. A refusal is a *RefusedError.
func (cc *ClientConn) Connect(ctx context.Context, t Target) (*Stream, error) {
	s, err := cc.openStream(ctx, []hpack.HeaderField{
		{Name: ":method", Value: http.MethodConnect},
		{Name: ":authority", Value: t.Authority()},
		{Name: "zt-app", Value: t.AppID},
	})
	if err != nil {
		return nil, err
	}
	status, h, err := s.awaitResponse(ctx)
	if err == nil && status != http.StatusOK {
		err = &RefusedError{Status: status, Reason: h.Get(HeaderReason)}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
