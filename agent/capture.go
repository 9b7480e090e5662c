package agent

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/internal/pcap"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/tunnel/netstack"
)

// The TUN capture (`ztdiag -c start|stop`): the packets the userspace stack
// reads from and writes to the TUN device go to a pcap file (LINKTYPE_RAW),
// created by the agent (root) with mode 0600, up to a size cap. The stack's
// tap copies each packet into a bounded queue and never waits: a packet that
// finds the queue full is counted as dropped, so a slow disk never slows the
// data path. One goroutine writes the queue to the file. A capture outlives
// a restart of the parts (attach hands it to the new stack) and ends with
// stop, the cap, a write error, or the agent's Close.

const (
	defaultSnaplen  = 65535
	captureMaxBytes = 100 << 20
	captureQueue    = 4096
	// captureQueueBytes bounds the bytes queued for the writer (large
	// segments are up to 64 KiB each).
	captureQueueBytes = 8 << 20
)

// captureState is the capture that runs or ran last, and the stack of the
// parts in force that it taps.
type captureState struct {
	mu    sync.Mutex
	stack *netstack.Stack
	cur   *capture
	// maxBytes is the file's cap; 0 is captureMaxBytes (tests set less).
	maxBytes int64
}

type capturedPacket struct {
	at      time.Time
	p       []byte // cut to the snapshot length
	origLen int
}

// capture is one capture. st's fixed fields are set before it starts; the
// counters are atomic; ended and ending are written by the writer goroutine
// before it closes done.
type capture struct {
	st               ctlapi.CaptureStatus
	f                *os.File
	bw               *bufio.Writer
	pw               *pcap.Writer
	q                chan capturedPacket
	stop, done       chan struct{}
	stopOnce         sync.Once
	abort            chan string // the capture's source failed: why
	over             atomic.Bool // the writer has ended: the tap discards
	packets, dropped atomic.Int64
	size             atomic.Int64
	queued           atomic.Int64 // bytes in q
	ended            time.Time
	ending           string
}

var (
	errCaptureRunning = errors.New("a capture is running already (ztdiag -c stop)")
	errNoCapture      = errors.New("no capture is running")
)

// attach makes the capture, if one runs, tap stack, the stack of new parts.
func (s *captureState) attach(stack *netstack.Stack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stack = stack
	if c := s.cur; c != nil && !c.over.Load() {
		stack.SetTap(c.tap)
	}
}

// start creates the file and starts capturing.
func (s *captureState) start(req ctlapi.CaptureRequest, stateDir string, log *zap.Logger) (ctlapi.CaptureStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && !s.cur.over.Load() {
		return ctlapi.CaptureStatus{}, errCaptureRunning
	}
	c, err := newCapture(req, stateDir, "tun", cmp.Or(s.maxBytes, captureMaxBytes))
	if err != nil {
		return ctlapi.CaptureStatus{}, err
	}
	s.cur = c
	go c.write(func() { s.detach(c) }, log, "TUN") // owned by c: stop and the agent's Close wait on c.done
	if s.stack != nil {
		s.stack.SetTap(c.tap)
	}
	log.Info("TUN capture started", zap.String("file", c.st.File), zap.Int("snaplen", c.st.Snaplen))
	return c.status(), nil
}

// newCapture creates the capture's file: req.File, or in the state
// directory's captures/, named after prefix and the time.
func newCapture(req ctlapi.CaptureRequest, stateDir, prefix string, maxBytes int64) (*capture, error) {
	snaplen := req.Snaplen
	if snaplen == 0 {
		snaplen = defaultSnaplen
	}
	if snaplen < 0 || snaplen > pcap.MaxSnaplen {
		return nil, fmt.Errorf("snaplen %d: want 1 to %d", snaplen, pcap.MaxSnaplen)
	}
	file := req.File
	if file == "" {
		file = filepath.Join(stateDir, "captures", prefix+"-"+time.Now().UTC().Format("20060102-150405")+".pcap")
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, err
		}
	}
	if !filepath.IsAbs(file) {
		return nil, fmt.Errorf("capture file %q: want an absolute path", file)
	}
	// O_EXCL: never overwrite (or follow a link to) a file that is there.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("capture file: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	pw, err := pcap.NewWriter(bw, snaplen)
	if err != nil {
		f.Close()
		os.Remove(file)
		return nil, err
	}
	c := &capture{
		st: ctlapi.CaptureStatus{Running: true, File: file, Snaplen: snaplen, MaxBytes: maxBytes, Started: time.Now()},
		f:  f, bw: bw, pw: pw,
		q:    make(chan capturedPacket, captureQueue),
		stop: make(chan struct{}), done: make(chan struct{}), abort: make(chan string, 1),
	}
	c.size.Store(pcap.FileHeaderLen)
	return c, nil
}

// tap is the stack's Tap: a copy of p (cut to the snaplen) to the queue.
func (c *capture) tap(_ bool, p []byte) { c.tapCut(p, len(p)) }

// tapCut queues a copy of p, the first bytes of a packet of origLen.
func (c *capture) tapCut(p []byte, origLen int) {
	if c.over.Load() {
		return
	}
	n := min(len(p), c.st.Snaplen)
	if c.queued.Load()+int64(n) > captureQueueBytes {
		c.dropped.Add(1)
		return
	}
	cp := capturedPacket{at: time.Now(), p: make([]byte, n), origLen: max(origLen, n)}
	copy(cp.p, p)
	select {
	case c.q <- cp:
		c.queued.Add(int64(n))
	default:
		c.dropped.Add(1)
	}
}

// fail ends the capture because its source failed.
func (c *capture) fail(why string) {
	select {
	case c.abort <- why:
	default:
	}
}

// write writes queued packets to the file until stop, the cap or an error;
// then the capture is over and onEnd detaches its source.
func (c *capture) write(onEnd func(), log *zap.Logger, what string) {
	defer close(c.done)
	ending := c.loop()
	c.over.Store(true)
	onEnd()
	err := errors.Join(c.bw.Flush(), c.f.Close())
	if err != nil && ending == "stopped" {
		ending = "write error: " + err.Error()
	}
	c.ended, c.ending = time.Now(), ending
	log.Info(what+" capture ended", zap.String("file", c.st.File), zap.String("why", ending),
		zap.Int64("packets", c.packets.Load()), zap.Int64("dropped", c.dropped.Load()))
}

func (c *capture) loop() string {
	for {
		select {
		case <-c.stop:
			return "stopped"
		case why := <-c.abort:
			return why
		case cp := <-c.q:
			c.queued.Add(-int64(len(cp.p)))
			if c.size.Load()+pcap.RecordHeaderLen+int64(len(cp.p)) > c.st.MaxBytes {
				return fmt.Sprintf("the size cap (%d MB) was reached", c.st.MaxBytes>>20)
			}
			n, err := c.pw.WriteCut(cp.at, cp.p, cp.origLen)
			c.size.Add(int64(n))
			if err != nil {
				return "write error: " + err.Error()
			}
			c.packets.Add(1)
		}
	}
}

// detach removes c's tap from the stack once c has ended by itself.
func (s *captureState) detach(c *capture) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == c && s.stack != nil {
		s.stack.SetTap(nil)
	}
}

// stopCapture ends the capture that runs and waits for its file to be
// written and closed.
func (s *captureState) stopCapture() (ctlapi.CaptureStatus, error) {
	s.mu.Lock()
	c := s.cur
	if c == nil || c.over.Load() {
		s.mu.Unlock()
		return ctlapi.CaptureStatus{}, errNoCapture
	}
	if s.stack != nil {
		s.stack.SetTap(nil)
	}
	s.mu.Unlock()
	return c.end(), nil
}

// end stops c and waits for its file to be written and closed.
func (c *capture) end() ctlapi.CaptureStatus {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
	return c.status()
}

// status is the capture that runs or ran last; nil when none was started.
func (s *captureState) status() *ctlapi.CaptureStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return statusOf(s.cur)
}

// statusOf is c's status; nil for no capture.
func statusOf(c *capture) *ctlapi.CaptureStatus {
	if c == nil {
		return nil
	}
	st := c.status()
	return &st
}

func (c *capture) status() ctlapi.CaptureStatus {
	st := c.st
	st.Packets, st.Dropped, st.Bytes = c.packets.Load(), c.dropped.Load(), c.size.Load()
	select {
	case <-c.done:
		st.Running, st.Ended, st.Ending = false, c.ended, c.ending
	default:
	}
	return st
}

// serveCapture is `ztdiag -c start|stop` (root).
func (a *Agent) serveCapture(w http.ResponseWriter, req *http.Request) {
	serveCaptureAction(w, req, func(cr ctlapi.CaptureRequest) (ctlapi.CaptureStatus, error) {
		return a.capture.start(cr, a.cfg.StateDir, a.log.Named("capture"))
	}, a.capture.stopCapture)
}

// serveCaptureAction decodes a capture request and starts or stops.
func serveCaptureAction(w http.ResponseWriter, req *http.Request,
	start func(ctlapi.CaptureRequest) (ctlapi.CaptureStatus, error), stop func() (ctlapi.CaptureStatus, error)) {
	var cr ctlapi.CaptureRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 4<<10)).Decode(&cr); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("capture request: %w", err))
		return
	}
	var st ctlapi.CaptureStatus
	var err error
	switch cr.Action {
	case ctlapi.CaptureStart:
		st, err = start(cr)
	case ctlapi.CaptureStop:
		st, err = stop()
	default:
		err = fmt.Errorf("capture action %q: want start or stop", cr.Action)
		writeError(w, http.StatusBadRequest, err)
		return
	}
	switch {
	case errors.Is(err, errCaptureRunning), errors.Is(err, errUplinkRunning), errors.Is(err, errNoCapture):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, platform.ErrUplinkCaptureUnsupported):
		writeError(w, http.StatusNotImplemented, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}
