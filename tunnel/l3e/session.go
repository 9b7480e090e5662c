package l3e

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v2"
	"go.uber.org/zap"
)

// tunOffset is where a packet starts in the client's buffers: headroom for the
// TUN's virtio header, and the byte before the packet for the message type,
// so packets move between the TUN and DTLS without a copy.
const tunOffset = 16

// bufSize holds the largest record plus the headroom.
const bufSize = tunOffset + 1<<16

// defaultKeepalive is used until the first template says otherwise.
const defaultKeepalive = 10 * time.Second

// session is one association with the gateway.
type session struct {
	c       *Client
	conn    *dtls.Conn
	bc      *BatchConn // conn's socket (nil: not a UDP socket)
	start   time.Time
	ready   chan struct{} // closed at the first valid template
	done    chan struct{} // closed when the reader has exited
	records atomic.Uint64 // sent and received, for re-keying
	last    atomic.Int64  // unix nanoseconds of the last record received
	tmpl    atomic.Pointer[sessionTemplate]
	// installed: the client sends through this association, so templates
	// are handed to OnTemplate (the first one by Client.install).
	installed atomic.Bool

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

func newSession(c *Client, conn *dtls.Conn, bc *BatchConn) *session {
	s := &session{c: c, conn: conn, bc: bc, start: time.Now(), ready: make(chan struct{}), done: make(chan struct{})}
	s.last.Store(time.Now().UnixNano())
	go func() { // owned by s: s.wait waits for it
		defer close(s.done)
		s.read()
	}()
	return s
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

// close says bye (when reason is set) and closes the association.
func (s *session) close(reason string) {
	s.closeOnce.Do(func() {
		if reason != "" {
			s.conn.SetWriteDeadline(time.Now().Add(time.Second))
			s.conn.Write(Bye(reason))
			// A zero deadline ends the timer goroutine pion keeps per deadline.
			s.conn.SetWriteDeadline(time.Time{})
		}
		s.conn.Close()
	})
}

func (s *session) wait() { <-s.done }

// keepalive returns the interval of the template in force.
func (s *session) keepalive() time.Duration {
	if st := s.tmpl.Load(); st != nil {
		return st.t.Keepalive()
	}
	return defaultKeepalive
}

// read takes the gateway's records until the association ends. It also sends
// the keepalives: a read deadline of one interval wakes it when nothing came.
func (s *session) read() {
	defer s.conn.SetReadDeadline(time.Time{})
	buf := make([]byte, bufSize)
	var asm Assembler
	sent := time.Now()
	var armed time.Time // pion starts a goroutine per deadline: set it only when it moves
	for {
		ka := s.keepalive()
		if time.Since(sent) >= ka {
			if _, err := s.conn.Write(Keepalive(uint64(time.Now().UnixNano()))); err != nil {
				s.fail(err)
				return
			}
			sent = time.Now()
		}
		if silent := time.Since(time.Unix(0, s.last.Load())); silent > 3*ka {
			s.fail(errors.New("l3e: gateway silent for " + silent.Round(time.Second).String()))
			return
		}
		if d := sent.Add(ka); d != armed {
			s.conn.SetReadDeadline(d)
			armed = d
		}
		n, err := s.conn.Read(buf[tunOffset-1:])
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.fail(err)
			return
		}
		s.last.Store(time.Now().UnixNano())
		s.records.Add(1)
		if !s.handle(buf, n, &asm) {
			return
		}
	}
}

// handle acts on one record at buf[tunOffset-1:][:n]; false ends the association.
func (s *session) handle(buf []byte, n int, asm *Assembler) bool {
	rec := buf[tunOffset-1 : tunOffset-1+n]
	switch rec[0] {
	case TypePacket:
		s.c.toTUN(s, buf, n-1)
	case TypeTemplate:
		whole, err := asm.Add(rec)
		if err != nil {
			s.c.stats.add(dropMalformed)
		} else if whole != nil {
			s.template(whole)
		}
	case TypeKeepalive:
		if r, err := KeepaliveReply(rec); err == nil {
			s.conn.Write(r)
		}
	case TypeKeepaliveReply:
	case TypeBye:
		s.fail(errors.New("l3e: gateway said bye: " + string(rec[1:])))
		return false
	default:
		s.c.stats.add(dropMalformed)
	}
	return true
}

// template installs a complete template; a refused one is logged with its
// problems and the last good one stays in force.
func (s *session) template(raw []byte) {
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
