package l7

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ClientConn is the client end of one HTTP/2 connection: the agent's to the PoP,
// and the PoP's to each publisher. It is written for the tunnel rather than taken
// from x/net's Transport, which gives every request body a goroutine and a
// scratch buffer of up to 512 KiB for the life of its stream: an idle tunnelled
// flow cost the agent and the PoP ¾ MB each. Here an open stream is a small
// struct; received data waits in pooled chunks only until it is read, and a
// write frames the caller's bytes directly. One goroutine reads the connection;
// writes happen on the writers' goroutines, one at a time.
//
// Settings are those of the shared wire (NewH2Server's counterpart): 1 MiB
// frames, windows of 16 MiB per stream and 64 MiB per connection, a PING after
// ReadIdle of silence and the connection closed if it is not answered within
// pingTimeout. Server push is refused.
type ClientConn struct {
	conn net.Conn
	fr   *http2.Framer // ReadFrame on the read loop; control frames written under wmu
	log  *zap.Logger

	// wmu serializes writes to the connection, and the HPACK encoder, whose
	// state follows the order in which header blocks are sent.
	wmu  sync.Mutex
	bw   *bufio.Writer
	henc *hpack.Encoder
	hbuf bytes.Buffer

	mu sync.Mutex
	// wcond wakes writers waiting for a send window or a stream slot (L = &mu).
	wcond       sync.Cond
	streams     map[uint32]*Stream // open streams by ID
	nextID      uint32
	active      int // streams counted against the peer's limit
	peer        peerSettings
	sendWindow  int64 // what the peer lets us send on the connection
	recvAvail   int64 // what we let the peer send on the connection
	recvUnsent  int64 // read (or discarded) but not yet returned to the peer
	goAway      bool
	goAwayCh    chan struct{} // closed when goAway is set
	draining    bool          // Drain was called: no new streams
	drained     chan struct{} // closed once draining and no stream is open
	err         error         // why the connection is dead; nil while it lives
	closing     bool          // Close began: no more health checks
	pingData    [8]byte
	pingAck     chan struct{} // closed when the outstanding PING is answered
	tableSize   uint32        // the peer's HEADER_TABLE_SIZE, applied to henc under wmu
	tableChange bool

	keepalive keepalive
	// lastFrame is when the last frame arrived, by the wall clock (unix
	// nanoseconds), which unlike the monotonic one goes on during a sleep.
	lastFrame atomic.Int64
	health    *time.Timer    // fires after keepalive.idle without a frame
	healthWG  sync.WaitGroup // health checks in progress
	readDone  chan struct{}  // closed when the read loop has ended
	settingsc chan struct{}  // closed when the peer's first SETTINGS arrived

	// srv is the server end's state; nil on a client. The same connection
	// code serves both ends: only who opens streams differs (h2server.go).
	srv *serverSide
}

// peerSettings are what the peer's SETTINGS allow us.
type peerSettings struct {
	maxFrame      uint32
	maxStreams    uint32
	initialWindow int64
	// extendedConnect: SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441), for UDP.
	extendedConnect bool
}

const (
	// Until the peer's SETTINGS arrive, RFC 9113 defaults, and as many
	// concurrent streams as x/net assumes.
	defaultMaxFrame      = 16 << 10
	defaultInitialWindow = 65535
	initialMaxStreams    = 100
	maxStreamID          = 1<<31 - 1
	maxWindow            = 1<<31 - 1
	// maxHeaderList bounds the header block of one response we accept.
	maxHeaderList = 64 << 10
	// windowRefresh is the credit worth a WINDOW_UPDATE on its own, as in x/net.
	windowRefresh = 4 << 10
)

var (
	// ErrConnClosed is the error of streams whose connection was closed by Close.
	ErrConnClosed = errors.New("l7: connection closed")
	errGoAway     = errors.New("l7: connection going away")
	errPing       = errors.New("l7: peer did not answer a PING")
)

// NewClientConn starts HTTP/2 as the client on c (a connection whose TLS
// handshake is done) and starts its read loop. The ClientConn owns c.
func NewClientConn(c net.Conn, log *zap.Logger) (*ClientConn, error) {
	return newClientConn(c, log, keepalive{idle: ReadIdle, timeout: pingTimeout})
}

// keepalive is when a silent connection is checked with a PING (idle), and
// how long the answer may take (timeout).
type keepalive struct{ idle, timeout time.Duration }

func newClientConn(c net.Conn, log *zap.Logger, ka keepalive) (*ClientConn, error) {
	return newConn(c, log, ka, nil)
}

// newConn starts HTTP/2 on c: as the client with srv nil, else as the server.
func newConn(c net.Conn, log *zap.Logger, ka keepalive, srv *serverSide) (*ClientConn, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cc := &ClientConn{
		conn:       c,
		log:        log,
		bw:         bufio.NewWriterSize(c, tlsRecordSize),
		streams:    make(map[uint32]*Stream),
		nextID:     1,
		peer:       peerSettings{maxFrame: defaultMaxFrame, maxStreams: initialMaxStreams, initialWindow: defaultInitialWindow},
		sendWindow: defaultInitialWindow,
		recvAvail:  connWindow,
		keepalive:  ka,
		readDone:   make(chan struct{}),
		settingsc:  make(chan struct{}),
		goAwayCh:   make(chan struct{}),
		drained:    make(chan struct{}),
		srv:        srv,
	}
	cc.wcond.L = &cc.mu
	cc.fr = http2.NewFramer(cc.bw, c)
	cc.fr.SetMaxReadFrameSize(maxFrameSize)
	cc.fr.SetReuseFrames()
	cc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cc.fr.MaxHeaderListSize = maxHeaderList
	cc.henc = hpack.NewEncoder(&cc.hbuf)

	var err error
	if srv == nil {
		_, err = cc.bw.WriteString(http2.ClientPreface)
		if err == nil {
			err = cc.fr.WriteSettings(
				http2.Setting{ID: http2.SettingEnablePush, Val: 0},
				http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
				http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrameSize},
				http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList},
			)
		}
	} else {
		err = cc.fr.WriteSettings(serverSettings...)
	}
	if err == nil {
		err = cc.fr.WriteWindowUpdate(0, connWindow-defaultInitialWindow)
	}
	if err == nil {
		err = cc.bw.Flush()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("l7: start HTTP/2: %w", err)
	}
	cc.lastFrame.Store(time.Now().UnixNano())
	cc.health = time.AfterFunc(ka.idle, cc.healthCheck)
	go cc.readLoop()
	return cc, nil
}

// tlsRecordSize sizes the write buffer: a flush of a full buffer is one full TLS
// record, and larger writes go through to the connection directly.
const tlsRecordSize = 16 << 10

// Done is closed when the connection is dead (lost, refused by the peer's
// protocol, or closed).
func (cc *ClientConn) Done() <-chan struct{} { return cc.readDone }

// Silence is how long ago the last frame arrived. On a live connection it
// stays under ReadIdle and a round trip: the keepalive's PING is answered.
// Longer means the keepalive could not run (the process was stopped, the
// machine slept) or goes unanswered.
func (cc *ClientConn) Silence() time.Duration {
	return time.Duration(time.Now().UnixNano() - cc.lastFrame.Load())
}

// GoingAway is closed when the peer sent GOAWAY: the streams it accepted go
// on, new ones must open on another connection.
func (cc *ClientConn) GoingAway() <-chan struct{} { return cc.goAwayCh }

// CanTakeNewRequest reports whether new streams may be opened: the connection
// lives, the peer has not sent GOAWAY, Drain was not called and stream IDs
// are left.
func (cc *ClientConn) CanTakeNewRequest() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.newStreamErrLocked() == nil
}

// Drain stops new streams on the connection and returns a channel that is
// closed once no stream is open on it. Streams already open go on; the
// caller closes the connection when the channel is closed (or Done is).
func (cc *ClientConn) Drain() <-chan struct{} {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.draining = true
	cc.checkDrainedLocked()
	return cc.drained
}

// checkDrainedLocked closes drained when the last stream of a draining
// connection is gone; it runs wherever active goes down.
func (cc *ClientConn) checkDrainedLocked() {
	if !cc.draining || cc.active > 0 {
		return
	}
	select {
	case <-cc.drained:
	default:
		close(cc.drained)
	}
}

// Close closes the connection: open streams fail with ErrConnClosed. It returns
// once the read loop and health checks have ended, and is idempotent.
func (cc *ClientConn) Close() error {
	cc.mu.Lock()
	cc.closing = true
	cc.mu.Unlock()
	cc.health.Stop()
	cc.fail(ErrConnClosed)
	<-cc.readDone
	cc.healthWG.Wait()
	return nil
}

// fail marks the connection dead with err (the first error wins), fails every
// stream and closes the connection, which ends the read loop. It takes mu, not
// wmu: a writer whose write failed calls it.
func (cc *ClientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = err
	streams := cc.streams
	cc.streams = make(map[uint32]*Stream)
	for _, s := range streams {
		s.failLocked(err, err)
	}
	cc.active = 0
	cc.checkDrainedLocked()
	cc.wcond.Broadcast()
	cc.mu.Unlock()
	cc.conn.Close()
}

// readLoop reads and dispatches frames until the connection fails.
func (cc *ClientConn) readLoop() {
	defer close(cc.readDone)
	err := cc.readPreface()
	if err == nil {
		err = cc.readFrames()
	}
	cc.health.Stop() // we alone reset it
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		// Tell the peer why, unless a write is in progress (it may be stuck).
		if cc.wmu.TryLock() {
			cc.flushFrame(cc.fr.WriteGoAway(cc.lastPeerStream(), http2.ErrCode(ce), nil))
			cc.wmu.Unlock()
		}
	}
	cc.fail(fmt.Errorf("l7: connection lost: %w", err))
	cc.log.Debug("connection ended", zap.Error(err))
}

func (cc *ClientConn) readFrames() error {
	for {
		fh, err := cc.fr.ReadFrameHeader()
		var f http2.Frame
		if err == nil && (fh.Type != http2.FrameData || fh.StreamID == 0) {
			f, err = cc.fr.ReadFrameForHeader(fh)
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				cc.resetStream(se.StreamID, se.Code, se)
				continue
			}
			return err
		}
		cc.health.Reset(cc.keepalive.idle)
		cc.lastFrame.Store(time.Now().UnixNano())
		if err := cc.checkFirstFrame(fh); err != nil {
			return err
		}
		switch f := f.(type) {
		case nil:
			err = cc.onData(fh) // DATA is read here, not by the Framer
		case *http2.MetaHeadersFrame:
			err = cc.onHeaders(f)
		case *http2.RSTStreamFrame:
			cc.onReset(f)
		case *http2.SettingsFrame:
			err = cc.onSettings(f)
		case *http2.WindowUpdateFrame:
			err = cc.onWindowUpdate(f)
		case *http2.PingFrame:
			err = cc.onPing(f)
		case *http2.GoAwayFrame:
			cc.onGoAway(f)
		case *http2.PushPromiseFrame:
			err = http2.ConnectionError(http2.ErrCodeProtocol) // we disabled push
		}
		var se http2.StreamError
		if errors.As(err, &se) {
			cc.resetStream(se.StreamID, se.Code, se)
		} else if err != nil {
			return err
		}
	}
}

// stream returns the open stream id, or nil. A frame for an ID we never
// opened is a protocol error.
func (cc *ClientConn) streamLocked(id uint32) (*Stream, error) {
	if s := cc.streams[id]; s != nil {
		return s, nil
	}
	if cc.srv != nil {
		if id > cc.srv.lastID || id%2 == 0 {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil, nil
	}
	if id >= cc.nextID || id%2 == 0 {
		return nil, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil, nil
}

func (cc *ClientConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	cc.mu.Lock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingMaxFrameSize:
			cc.peer.maxFrame = s.Val
		case http2.SettingMaxConcurrentStreams:
			cc.peer.maxStreams = s.Val
		case http2.SettingInitialWindowSize:
			// RFC 9113 §6.9.2: the change applies to every open stream's window.
			delta := int64(s.Val) - cc.peer.initialWindow
			cc.peer.initialWindow = int64(s.Val)
			for _, st := range cc.streams {
				st.sendWindow += delta
			}
		case http2.SettingHeaderTableSize:
			cc.tableSize, cc.tableChange = s.Val, true
		case http2.SettingEnableConnectProtocol:
			cc.peer.extendedConnect = s.Val == 1
		}
		return nil
	})
	select {
	case <-cc.settingsc:
	default:
		close(cc.settingsc)
	}
	cc.wcond.Broadcast()
	cc.mu.Unlock()
	if err != nil {
		return err
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	cc.mu.Lock()
	size, change := cc.tableSize, cc.tableChange
	cc.tableChange = false
	cc.mu.Unlock()
	if change {
		cc.henc.SetMaxDynamicTableSizeLimit(size)
	}
	return cc.flushFrame(cc.fr.WriteSettingsAck())
}

func (cc *ClientConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	cc.mu.Lock()
	cc.wcond.Broadcast()
	if f.StreamID == 0 {
		cc.sendWindow += int64(f.Increment)
		defer cc.mu.Unlock()
		if cc.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		return nil
	}
	s, err := cc.streamLocked(f.StreamID)
	if s == nil {
		cc.mu.Unlock()
		return err
	}
	s.sendWindow += int64(f.Increment)
	overflow := s.sendWindow > maxWindow
	cc.mu.Unlock()
	if overflow {
		se := http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
		cc.resetStream(f.StreamID, se.Code, se)
	}
	return nil
}

func (cc *ClientConn) onPing(f *http2.PingFrame) error {
	if f.IsAck() {
		cc.mu.Lock()
		if cc.pingAck != nil && f.Data == cc.pingData {
			close(cc.pingAck)
			cc.pingAck = nil
		}
		cc.mu.Unlock()
		return nil
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	return cc.flushFrame(cc.fr.WritePing(true, f.Data))
}

// onGoAway stops new streams; the peer will not process those above its last
// stream ID, so they fail now. The others go on until they end.
func (cc *ClientConn) onGoAway(f *http2.GoAwayFrame) {
	if f.ErrCode != http2.ErrCodeNo {
		cc.log.Info("peer is going away", zap.Stringer("code", f.ErrCode), zap.ByteString("debug", f.DebugData()))
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.goAway {
		cc.goAway = true
		close(cc.goAwayCh)
	}
	for id, s := range cc.streams {
		if id > f.LastStreamID && cc.srv == nil { // a server's streams are the peer's
			s.failLocked(errGoAway, errGoAway)
			cc.forgetLocked(s)
		}
	}
	cc.wcond.Broadcast()
}

func (cc *ClientConn) onReset(f *http2.RSTStreamFrame) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	s := cc.streams[f.StreamID]
	if s == nil {
		return
	}
	err := http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode}
	// A reset after the response ended (NO_ERROR: the server is done and will
	// not read the rest of our request) leaves what was received readable.
	readErr := error(err)
	if s.readEOF {
		readErr = nil
	}
	s.failLocked(readErr, err)
	cc.forgetLocked(s)
}

// resetStream ends stream id with RST_STREAM(code); its reads and writes fail
// with err.
func (cc *ClientConn) resetStream(id uint32, code http2.ErrCode, err error) {
	// Forgotten before the RST is written, unlike in Stream.Close: the
	// stream's own end (a server handler returning) must find it gone and
	// send nothing of its own ahead of this code.
	cc.mu.Lock()
	s := cc.streams[id]
	if s != nil {
		s.failLocked(err, err)
		cc.forgetLocked(s)
	}
	cc.mu.Unlock()
	cc.wmu.Lock()
	cc.flushFrame(cc.fr.WriteRSTStream(id, code))
	cc.wmu.Unlock()
}

// forgetLocked removes a stream that is over in both directions (or reset)
// from the connection. Its unread data stays readable, and is returned to the
// connection's window as it is read or discarded.
func (cc *ClientConn) forgetLocked(s *Stream) {
	if cc.streams[s.id] != s {
		return
	}
	delete(cc.streams, s.id)
	cc.active--
	cc.checkDrainedLocked()
	cc.wcond.Broadcast()
}

// flushFrame flushes a frame just written (under wmu) unless writing it failed.
// A failed write kills the connection.
func (cc *ClientConn) flushFrame(err error) error {
	if err == nil {
		err = cc.bw.Flush()
	}
	if err != nil {
		cc.fail(err)
	}
	return err
}

// returnWindow gives n bytes read (or discarded) back to the peer, at the
// connection level and, with s not nil, the stream's, once the credit is worth
// a WINDOW_UPDATE.
func (cc *ClientConn) returnWindow(s *Stream, n int) {
	if n == 0 {
		return
	}
	cc.mu.Lock()
	connIncr := refresh(&cc.recvAvail, &cc.recvUnsent, n)
	var streamIncr int64
	if s != nil && !s.readEOF && s.readErr == nil {
		streamIncr = refresh(&s.recvAvail, &s.recvUnsent, n)
	}
	cc.mu.Unlock()
	if connIncr == 0 && streamIncr == 0 {
		return
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	var err error
	if connIncr > 0 {
		err = cc.fr.WriteWindowUpdate(0, uint32(connIncr))
	}
	if streamIncr > 0 && err == nil {
		err = cc.fr.WriteWindowUpdate(s.id, uint32(streamIncr))
	}
	cc.flushFrame(err)
}

// refresh adds n to the unsent credit and returns the increment to send, if
// the credit is worth it: at least windowRefresh, or more than what the peer
// may still send.
func refresh(avail, unsent *int64, n int) int64 {
	*unsent += int64(n)
	if *unsent < windowRefresh && *unsent < *avail {
		return 0
	}
	incr := *unsent
	*avail += incr
	*unsent = 0
	return incr
}

// healthCheck runs after keepalive.idle without a frame: it sends a PING and
// fails the connection if it is not answered within keepalive.timeout.
func (cc *ClientConn) healthCheck() {
	cc.Ping(cc.keepalive.timeout)
}

// Ping checks that the peer answers: it sends a PING (or joins the one
// outstanding) and waits up to timeout for the answer. Without one the
// connection is failed, its streams end with an error, and Ping returns the
// error; so does a connection that is already dead. The agent pings with a
// short timeout when it has reason to doubt the path (a wake from sleep),
// rather than wait for the keepalive.
func (cc *ClientConn) Ping(timeout time.Duration) error {
	cc.mu.Lock()
	if cc.closing || cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		if err == nil {
			err = ErrConnClosed
		}
		return err
	}
	cc.healthWG.Add(1)
	defer cc.healthWG.Done()
	ack, send := cc.pingAck, cc.pingAck == nil
	if send {
		rand.Read(cc.pingData[:])
		ack = make(chan struct{})
		cc.pingAck = ack
	}
	data := cc.pingData
	cc.mu.Unlock()

	// The timer, not this goroutine, fails the connection: a write stuck on a
	// dead peer is unblocked only by closing the connection.
	deadline := time.AfterFunc(timeout, func() { cc.fail(errPing) })
	defer deadline.Stop()
	if send {
		cc.wmu.Lock()
		err := cc.flushFrame(cc.fr.WritePing(false, data))
		cc.wmu.Unlock()
		if err != nil {
			return err
		}
	}
	select {
	case <-ack:
		return nil
	case <-cc.readDone:
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.err
	}
}
