package l3e

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v2"
	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l3e/record"
)

// tunOffset is where a packet starts in the data path's buffers: the byte
// before it holds the message type and the record header and explicit
// nonce go before that, so a packet read from a TUN is sealed in place
// (with room for the virtio header wireguard-go's tun puts before it). A
// packet opened in place is copied by the TUNWriter into a buffer of the
// same layout, since the receive buffer is reused before the write.
const tunOffset = record.Prefix + 1

// TUNOffset is tunOffset for the gateway, which shares the layout.
const TUNOffset = tunOffset

// bufSize holds the largest record plus the headroom.
const bufSize = tunOffset + 1<<16

// defaultKeepalive is used until the first template says otherwise.
const defaultKeepalive = 10 * time.Second

// pendingMax bounds the records of ours that arrive before the handshake
// has given their keys (the gateway's first records can overtake the
// completion of ours); pendingPoll is how often the reader looks for the
// keys meanwhile.
const (
	pendingMax  = 16
	pendingPoll = 10 * time.Millisecond
)

// session is one association with the gateway. pion made its handshake and
// keeps what is not ours (handshake retransmissions, alerts, records of its
// sequence numbers: its conn reads a FeedConn the session's reader feeds);
// our record layer carries every message, both ways.
type session struct {
	c     *Client
	sock  *Socket
	feed  *FeedConn
	start time.Time
	ready chan struct{} // closed at the first valid template
	done  chan struct{} // closed when the reader and pion's reader have exited
	// running counts the reader and pion's reader; the last to exit closes done.
	running atomic.Int32

	mu   sync.Mutex // guards conn
	conn *dtls.Conn // nil until the handshake completes
	// seal is set before the session is handed on; open once the handshake
	// completes (the reader waits for it).
	seal *record.Sealer
	open atomic.Pointer[record.Opener]

	records atomic.Uint64 // sent and received, for re-keying
	last    atomic.Int64  // unix nanoseconds of the last record received
	sent    atomic.Int64  // unix nanoseconds of the last keepalive sent
	tmpl    atomic.Pointer[sessionTemplate]
	// installed: the client sends through this association, so templates
	// are handed to OnTemplate (the first one by Client.install).
	installed atomic.Bool
	amu       sync.Mutex // guards asm: both readers may carry template chunks
	asm       Assembler

	closeOnce sync.Once
	errMu     sync.Mutex
	failure   error
}

// sessionTemplate is a template compiled for the data path.
type sessionTemplate struct {
	t      *Template
	filter *Filter
	raw    []byte
}

// newSession starts reading raw, the socket to the gateway; the handshake
// comes next.
func newSession(c *Client, raw net.Conn) *session {
	s := &session{c: c, sock: NewSocket(raw), start: time.Now(), ready: make(chan struct{}), done: make(chan struct{})}
	s.feed = NewFeedConn(raw.LocalAddr(), raw.RemoteAddr(), raw.Write)
	now := time.Now().UnixNano()
	s.last.Store(now)
	s.sent.Store(now)
	s.running.Store(2)
	go func() { // owned by s: s.wait waits for it
		defer s.exited()
		s.read()
	}()
	return s
}

func (s *session) exited() {
	if s.running.Add(-1) == 0 {
		close(s.done)
	}
}

// established takes the keys of the completed handshake and starts pion's
// reader, which delivers what pion decrypts.
func (s *session) established(conn *dtls.Conn) error {
	keys, err := record.KeysOf(conn)
	var o *record.Opener
	if err == nil {
		s.seal, o, err = keys.Both()
	}
	if err != nil {
		conn.Close()
		s.exited() // pion's reader never ran
		return err
	}
	s.mu.Lock() // after seal: close says bye once it sees conn
	s.conn = conn
	s.mu.Unlock()
	s.open.Store(o)
	go func() { // owned by s: s.wait waits for it
		defer s.exited()
		s.pionRead()
	}()
	return nil
}

// fail records why the association ends and closes it.
func (s *session) fail(err error) {
	s.errMu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	s.errMu.Unlock()
	s.close("")
}

func (s *session) err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.failure == nil {
		return errors.New("l3e: association closed")
	}
	return s.failure
}

// close says bye (when reason is set and the keys are there), lets pion
// send its close_notify, and closes the socket, which ends the reader.
func (s *session) close(reason string) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		conn := s.conn
		s.mu.Unlock()
		if reason != "" && conn != nil {
			s.send(Bye(reason))
		}
		if conn != nil {
			conn.Close()
		}
		s.feed.Close()
		s.sock.Close()
	})
}

func (s *session) wait() { <-s.done }

// send seals msg (a control message) into a record of its own and sends it.
func (s *session) send(msg []byte) error {
	rec, err := s.seal.SealCopy(msg)
	if err == nil {
		err = s.sock.WriteTo(rec, nil)
	}
	s.records.Add(1)
	return err
}

// keepalive returns the interval of the template in force.
func (s *session) keepalive() time.Duration {
	if st := s.tmpl.Load(); st != nil {
		return st.t.Keepalive()
	}
	return defaultKeepalive
}

// tick sends a keepalive when one is due and fails the association when the
// gateway has been silent for three intervals.
func (s *session) tick(now time.Time) {
	ka := s.keepalive()
	if now.Sub(time.Unix(0, s.sent.Load())) >= ka {
		s.sent.Store(now.UnixNano())
		if err := s.send(Keepalive(uint64(now.UnixNano()))); err != nil {
			s.fail(err)
			return
		}
	}
	if silent := now.Sub(time.Unix(0, s.last.Load())); silent > 3*ka {
		s.fail(errors.New("l3e: gateway silent for " + silent.Round(time.Second).String()))
	}
}

// read takes the gateway's datagrams, a recvmmsg batch at a time, until the
// socket is closed: records of ours are opened in place and handled, the
// rest go to pion.
func (s *session) read() {
	ms := s.sock.NewMessages(SockBatch)
	var pending [][]byte
	for {
		n, err := s.sock.ReadBatch(ms)
		now := time.Now().UnixNano() // once a batch: silence is judged in seconds
		waiting := len(pending) > 0
		if waiting {
			pending = s.drain(pending, now)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && waiting {
				continue
			}
			s.fail(fmt.Errorf("l3e: read: %w", err))
			return
		}
		for i := range n {
			s.sock.Segments(&ms[i], func(buf []byte, off, end int) {
				pending = s.datagram(buf[off:end], now, pending)
			})
		}
	}
}

// datagram handles one datagram, received at now (unix nanoseconds); one of
// ours that came before the keys is kept in pending.
func (s *session) datagram(d []byte, now int64, pending [][]byte) [][]byte {
	st := &s.c.stats.records
	st.Datagrams.Add(1)
	if !record.Ours(d) {
		if Truncated(d) {
			st.Truncated.Add(1)
		}
		s.feed.Feed(d)
		return pending
	}
	o := s.open.Load()
	if o == nil {
		if len(pending) < pendingMax {
			pending = append(pending, append([]byte(nil), d...))
			s.sock.Conn().SetReadDeadline(time.Now().Add(pendingPoll))
		}
		return pending
	}
	msg, err := o.Open(d)
	if err != nil {
		st.Count(err)
		return pending
	}
	s.last.Store(now)
	s.records.Add(1)
	s.handle(msg)
	return pending
}

// drain handles the pending records once the keys are there, else waits on.
func (s *session) drain(pending [][]byte, now int64) [][]byte {
	if s.open.Load() == nil {
		s.sock.Conn().SetReadDeadline(time.Now().Add(pendingPoll))
		return pending
	}
	s.sock.Conn().SetReadDeadline(time.Time{})
	for _, d := range pending {
		s.datagram(d, now, nil)
	}
	return nil
}

// pionRead delivers what pion decrypts (records of the peer's pion) until
// the association ends.
func (s *session) pionRead() {
	buf := make([]byte, DatagramSize)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			s.fail(fmt.Errorf("l3e: dtls: %w", err))
			return
		}
		s.last.Store(time.Now().UnixNano())
		s.records.Add(1)
		if n > 0 {
			s.handle(buf[:n])
		}
	}
}

// handle acts on one message (type byte first).
func (s *session) handle(msg []byte) {
	switch msg[0] {
	case TypePacket:
		s.c.toTUN(s, msg[1:])
	case TypeTemplate:
		s.amu.Lock()
		whole, err := s.asm.Add(msg)
		s.amu.Unlock()
		if err != nil {
			s.c.stats.add(dropMalformed)
		} else if whole != nil {
			s.template(whole)
		}
	case TypeKeepalive:
		if r, err := KeepaliveReply(msg); err == nil {
			s.send(r)
		}
	case TypeKeepaliveReply:
	case TypeBye:
		s.fail(errors.New("l3e: gateway said bye: " + string(msg[1:])))
	default:
		s.c.stats.add(dropMalformed)
	}
}

// template installs a complete template; a refused one is logged with its
// problems and the last good one stays in force.
func (s *session) template(raw []byte) {
	s.amu.Lock() // one template at a time
	defer s.amu.Unlock()
	if old := s.tmpl.Load(); old != nil && string(old.raw) == string(raw) {
		return
	}
	t, err := DecodeTemplate(raw)
	var f *Filter
	if err == nil {
		f, err = NewFilter(t.Routes)
	}
	if err != nil {
		s.c.stats.templatesRefused.Add(1)
		s.c.log.Error("L3E template refused, keeping the last good one", zap.Error(err))
		return
	}
	s.tmpl.Store(&sessionTemplate{t: t, filter: f, raw: raw})
	if s.installed.Load() {
		s.c.applyTemplate(t)
	}
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
}
