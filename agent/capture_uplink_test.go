package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/internal/pcap"
	"github.com/ztagent/ztagent/platform"
)

// fakeUplink is a platform.UplinkCapture fed by the test.
type fakeUplink struct {
	pkts    chan []byte
	eps     chan []platform.Endpoint
	closed  chan struct{}
	once    sync.Once
	setErr  error
	readErr error
}

func newFakeUplink() *fakeUplink {
	return &fakeUplink{pkts: make(chan []byte), eps: make(chan []platform.Endpoint, 16), closed: make(chan struct{})}
}

func (f *fakeUplink) SetEndpoints(eps []platform.Endpoint) error {
	if f.setErr != nil {
		return f.setErr
	}
	select {
	case f.eps <- eps:
	default:
	}
	return nil
}

func (f *fakeUplink) ReadPacket(buf []byte) (int, int, error) {
	select {
	case p := <-f.pkts:
		if p == nil {
			return 0, 0, f.readErr
		}
		return copy(buf, p), len(p), nil
	case <-f.closed:
		return 0, 0, net.ErrClosed
	}
}

func (f *fakeUplink) Interface() string { return "eth9" }
func (f *fakeUplink) Close() error      { f.once.Do(func() { close(f.closed) }); return nil }

// TestUplinkCapture: -p start opens the platform capture with the agent's
// own endpoints and follows them as they grow; the packets it reads land in
// a 0600 pcap file (cut to the snaplen, their length kept); -p stop closes
// the capture; status shows it apart from the TUN capture.
func TestUplinkCapture(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	src := newFakeUplink()
	a.uplink.open = func() (platform.UplinkCapture, error) { return src, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pop := platform.Endpoint{Proto: platform.ProtoTCP, Addr: netip.MustParseAddrPort("192.0.2.77:443")}
	platform.AddOwnEndpoint(pop)

	file := filepath.Join(t.TempDir(), "u.pcap")
	st, err := a.ctl.UplinkCapture(ctx, ctlapi.CaptureRequest{Action: ctlapi.CaptureStart, File: file, Snaplen: 100})
	if err != nil || !st.Running || st.File != file || st.Interface != "eth9" {
		t.Fatalf("start: %+v, %v", st, err)
	}
	if eps := <-src.eps; !slices.Contains(eps, pop) {
		t.Fatalf("the capture's first endpoints %v lack %v", eps, pop)
	}
	gw := platform.Endpoint{Proto: platform.ProtoUDP, Addr: netip.MustParseAddrPort("192.0.2.78:443")}
	platform.AddOwnEndpoint(gw)
	if eps := <-src.eps; !slices.Contains(eps, gw) {
		t.Fatalf("after a new dial the endpoints %v lack %v", eps, gw)
	}
	if _, err := a.ctl.UplinkCapture(ctx, ctlapi.CaptureRequest{Action: ctlapi.CaptureStart, File: file + "2"}); !isStatus(err, http.StatusConflict) {
		t.Fatalf("a second start: %v, want a conflict", err)
	}
	big := make([]byte, 300)
	big[0] = 0x45
	src.pkts <- big
	src.pkts <- []byte{0x45, 1, 2}
	for a.Status().UplinkCapture.Packets < 2 {
		if ctx.Err() != nil {
			t.Fatal("the packets never reached the file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := a.Status(); s.Capture != nil || s.UplinkCapture == nil || !s.UplinkCapture.Running {
		t.Fatalf("status while capturing: TUN %+v, uplink %+v", s.Capture, s.UplinkCapture)
	}
	st, err = a.ctl.UplinkCapture(ctx, ctlapi.CaptureRequest{Action: ctlapi.CaptureStop})
	if err != nil || st.Running || st.Ending != "stopped" || st.Packets != 2 {
		t.Fatalf("stop: %+v, %v", st, err)
	}
	select {
	case <-src.closed:
	default:
		t.Fatal("stop left the platform capture open")
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != st.Bytes {
		t.Fatalf("file: %v %v, want mode 0600 and %d bytes", fi, err, st.Bytes)
	}
	b, _ := os.ReadFile(file)
	pkts := pcapPackets(t, b)
	rec := b[pcap.FileHeaderLen:]
	if len(pkts) != 2 || len(pkts[0]) != 100 || binary.LittleEndian.Uint32(rec[12:]) != 300 || len(pkts[1]) != 3 {
		t.Fatalf("records %d (%d bytes, original %d), want 2, the first cut to 100 of 300", len(pkts), len(pkts[0]), binary.LittleEndian.Uint32(rec[12:]))
	}
}

// TestUplinkCaptureFailures: an OS without the capture, or a filter the
// kernel refuses, is refused with nothing left behind; a read error ends
// the capture with its reason.
func TestUplinkCaptureFailures(t *testing.T) {
	dir := t.TempDir()
	s := uplinkCaptureState{open: func() (platform.UplinkCapture, error) {
		return nil, errors.Join(platform.ErrUplinkCaptureUnsupported)
	}}
	if _, err := s.start(ctlapi.CaptureRequest{Action: ctlapi.CaptureStart}, dir, zap.NewNop()); !errors.Is(err, platform.ErrUplinkCaptureUnsupported) {
		t.Fatalf("start: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "captures")); len(ents) != 0 {
		t.Fatalf("a refused capture left %v", ents)
	}
	bad := newFakeUplink()
	bad.setErr = errors.New("filter too long")
	s.open = func() (platform.UplinkCapture, error) { return bad, nil }
	if _, err := s.start(ctlapi.CaptureRequest{Action: ctlapi.CaptureStart}, dir, zap.NewNop()); err != bad.setErr {
		t.Fatalf("start with a filter refused: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "captures")); len(ents) != 0 {
		t.Fatalf("a capture whose filter was refused left %v", ents)
	}
	src := newFakeUplink()
	src.readErr = errors.New("network is down")
	s.open = func() (platform.UplinkCapture, error) { return src, nil }
	st, err := s.start(ctlapi.CaptureRequest{Action: ctlapi.CaptureStart}, dir, zap.NewNop())
	if err != nil || !strings.HasPrefix(filepath.Base(st.File), "uplink-") {
		t.Fatalf("start: %+v %v", st, err)
	}
	src.pkts <- nil // the read error
	deadline := time.Now().Add(10 * time.Second)
	for s.status().Running {
		if time.Now().After(deadline) {
			t.Fatal("the capture did not end on the read error")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.status().Ending; got != "read error: network is down" {
		t.Fatalf("ending %q", got)
	}
	if _, err := s.stopCapture(); err != errNoCapture {
		t.Fatalf("stop after the end: %v", err)
	}
}
