package agent

import (
	"cmp"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
)

// The uplink capture (`ztdiag -p start|stop`): the packets of the agent's
// own connections on the uplink (platform.OwnEndpoints: the PoPs, the L3E
// gateway, the tenant API, the DNS upstreams, the probes) go to a pcap file
// with the same rules as the TUN capture: created by the agent, 0600, never
// over a file that is there, the same size cap and queue. A platform
// capture (a packet socket with a kernel filter on Linux, /dev/bpf on
// macOS, receive-all raw sockets filtered in user space on Windows) reads
// them; the filter follows the endpoints as the agent dials new ones. One reader
// goroutine feeds the capture's queue; the writer goroutine is the TUN
// capture's.

var errUplinkRunning = errors.New("an uplink capture is running already (ztdiag -p stop)")

// uplinkCaptureState is the uplink capture that runs or ran last.
type uplinkCaptureState struct {
	mu  sync.Mutex
	cur *capture
	// open opens the platform's capture (platform.OpenUplinkCapture;
	// tests give a fake).
	open func() (platform.UplinkCapture, error)
	// maxBytes is the file's cap; 0 is captureMaxBytes (tests set less).
	maxBytes int64
}

// start opens the platform capture and the file, and starts reading.
func (s *uplinkCaptureState) start(req ctlapi.CaptureRequest, stateDir string, log *zap.Logger) (ctlapi.CaptureStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && !s.cur.over.Load() {
		return ctlapi.CaptureStatus{}, errUplinkRunning
	}
	open := s.open
	if open == nil {
		open = platform.OpenUplinkCapture
	}
	src, err := open()
	if err != nil {
		return ctlapi.CaptureStatus{}, err
	}
	c, err := newCapture(req, stateDir, "uplink", cmp.Or(s.maxBytes, captureMaxBytes))
	if err != nil {
		src.Close()
		return ctlapi.CaptureStatus{}, err
	}
	c.st.Interface = src.Interface()
	// The watch runs under the endpoint set's lock: the first call (in
	// WatchOwnEndpoints, before it returns) answers for the start; a later
	// one, from a dial, ends the capture instead of writing filterErr,
	// which is read here unlocked.
	var filterErr error
	var endpoints int // at the start, for the log
	first := true
	unwatch := platform.WatchOwnEndpoints(func(eps []platform.Endpoint) {
		err := src.SetEndpoints(eps)
		switch {
		case first:
			first, filterErr, endpoints = false, err, len(eps)
		case err != nil:
			c.fail("filter error: " + err.Error())
		}
	})
	if filterErr != nil {
		unwatch()
		src.Close()
		c.f.Close()
		os.Remove(c.st.File)
		return ctlapi.CaptureStatus{}, filterErr
	}
	s.cur = c
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		readUplink(c, src)
	}()
	// The writer ends the capture: it stops following the endpoints, closes
	// the source (which ends the reader) and waits for the reader.
	go c.write(func() { // owned by c: stop and the agent's Close wait on c.done
		unwatch()
		src.Close()
		reader.Wait()
	}, log, "uplink")
	log.Info("uplink capture started", zap.String("file", c.st.File), zap.String("interface", c.st.Interface),
		zap.Int("snaplen", c.st.Snaplen), zap.Int("endpoints", endpoints))
	return c.status(), nil
}

// readUplink queues the packets src reads until it is closed or fails.
func readUplink(c *capture, src platform.UplinkCapture) {
	buf := make([]byte, c.st.Snaplen)
	for {
		n, origLen, err := src.ReadPacket(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.fail("read error: " + err.Error())
			}
			return
		}
		c.tapCut(buf[:n], origLen)
	}
}

// stopCapture ends the capture that runs and waits for its file.
func (s *uplinkCaptureState) stopCapture() (ctlapi.CaptureStatus, error) {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil || c.over.Load() {
		return ctlapi.CaptureStatus{}, errNoCapture
	}
	return c.end(), nil
}

// status is the capture that runs or ran last; nil when none was started.
func (s *uplinkCaptureState) status() *ctlapi.CaptureStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return statusOf(s.cur)
}

// serveUplinkCapture is `ztdiag -p start|stop` (root).
func (a *Agent) serveUplinkCapture(w http.ResponseWriter, req *http.Request) {
	serveCaptureAction(w, req, func(cr ctlapi.CaptureRequest) (ctlapi.CaptureStatus, error) {
		return a.uplink.start(cr, a.cfg.StateDir, a.log.Named("capture"))
	}, a.uplink.stopCapture)
}

// noteUpstreams makes the DNS upstreams the agent forwards to its own
// endpoints, over UDP and TCP (the proxy's sockets to them are not
// BypassDialer's).
func noteUpstreams(ups []netip.AddrPort) {
	for _, up := range ups {
		platform.AddOwnEndpoint(platform.Endpoint{Proto: platform.ProtoUDP, Addr: up})
		platform.AddOwnEndpoint(platform.Endpoint{Proto: platform.ProtoTCP, Addr: up})
	}
}
