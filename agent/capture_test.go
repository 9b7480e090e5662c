package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/internal/pcap"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

// pcapPackets reads the packets of a pcap file the agent wrote.
func pcapPackets(t *testing.T, b []byte) [][]byte {
	t.Helper()
	le := binary.LittleEndian
	if len(b) < pcap.FileHeaderLen || le.Uint32(b) != 0xa1b2c3d4 || le.Uint32(b[20:]) != pcap.LinkTypeRaw {
		t.Fatalf("not a LINKTYPE_RAW pcap file: % x", b[:min(len(b), 24)])
	}
	var pkts [][]byte
	for b = b[pcap.FileHeaderLen:]; len(b) >= pcap.RecordHeaderLen; {
		n := int(le.Uint32(b[8:]))
		if pcap.RecordHeaderLen+n > len(b) {
			t.Fatalf("a record of %d bytes passes the file's end", n)
		}
		pkts = append(pkts, b[pcap.RecordHeaderLen:pcap.RecordHeaderLen+n])
		b = b[pcap.RecordHeaderLen+n:]
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after the last record", len(b))
	}
	return pkts
}

// TestCapture: -c start captures a flow's packets both ways (the client's
// UDP datagram read from the TUN, the ICMP unreachable written to it) into
// a 0600 pcap file that tcpdump reads; -c stop ends it; status shows it.
func TestCapture(t *testing.T) {
	peer, err := netstacktest.NewPeer(netstacktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	a := newFakeAgent(t, "", func(c *Config) {
		c.NewTUN = fakeTUNOf(peer.Device())
	})
	a.start(t)
	p := partsOf(t, a.Agent)
	withClient(t, p, func(c *steering.ClientConfig) { c.FailMode = steering.FailClose })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	file := filepath.Join(t.TempDir(), "c.pcap")
	st, err := a.ctl.Capture(ctx, ctlapi.CaptureRequest{Action: ctlapi.CaptureStart, File: file, Snaplen: 200})
	if err != nil || !st.Running || st.File != file || st.Snaplen != 200 {
		t.Fatalf("start: %+v, %v", st, err)
	}
	if _, err := a.ctl.Capture(ctx, ctlapi.CaptureRequest{Action: ctlapi.CaptureStart, File: file + "2"}); !isStatus(err, http.StatusConflict) {
		t.Fatalf("a second start: %v, want a conflict", err)
	}
	if s := a.Status().Capture; s == nil || !s.Running || s.File != file {
		t.Fatalf("status while capturing: %+v", s)
	}
	icmp := func() uint64 { return peer.Stack().Stats().ICMP.V4.PacketsReceived.DstUnreachable.Value() }
	c, err := peer.DialUDP(netip.MustParseAddrPort("10.40.0.7:5060")) // steered; the tunnel is down
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("capture me"))
	for icmp() < 1 {
		if ctx.Err() != nil {
			t.Fatal("no ICMP destination unreachable")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	st, err = a.ctl.Capture(ctx, ctlapi.CaptureRequest{Action: ctlapi.CaptureStop})
	if err != nil || st.Running || st.Ending != "stopped" || st.Packets < 2 {
		t.Fatalf("stop: %+v, %v", st, err)
	}
	if _, err := a.ctl.Capture(ctx, ctlapi.CaptureRequest{Action: ctlapi.CaptureStop}); !isStatus(err, http.StatusConflict) {
		t.Fatalf("a second stop: %v, want a conflict", err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != st.Bytes {
		t.Fatalf("file: %v %v (%d bytes, status says %d), want mode 0600", fi.Mode(), err, fi.Size(), st.Bytes)
	}
	b, _ := os.ReadFile(file)
	var in, out bool
	for _, pkt := range pcapPackets(t, b) {
		switch {
		case len(pkt) > 20 && pkt[9] == 17 && bytes.Contains(pkt, []byte("capture me")):
			in = true
		case len(pkt) > 20 && pkt[9] == 1 && pkt[20] == 3: // ICMP destination unreachable
			out = true
		}
	}
	if !in || !out {
		t.Fatalf("the capture holds the datagram %v, the ICMP unreachable %v; want both", in, out)
	}
	if tcpdump, err := exec.LookPath("tcpdump"); err == nil {
		o, err := exec.Command(tcpdump, "-n", "-r", file).CombinedOutput()
		if err != nil || !strings.Contains(string(o), "> 10.40.0.7.5060: ") || !strings.Contains(string(o), "IP 10.40.0.7 > 10.0.0.2: ICMP host 10.40.0.7 unreachable") {
			t.Fatalf("tcpdump -r: %v\n%s", err, o)
		}
	} else {
		t.Log("SKIPPED the tcpdump check: tcpdump is not installed (scripts/deps.sh)")
	}
}

func isStatus(err error, code int) bool {
	e, ok := err.(*ctlapi.APIError)
	return ok && e.Status == code
}

// TestCaptureSizeCap: the capture ends by itself at its size cap, and the
// file never passes it.
func TestCaptureSizeCap(t *testing.T) {
	s := captureState{maxBytes: 10 << 10}
	dir := t.TempDir()
	st, err := s.start(ctlapi.CaptureRequest{Action: ctlapi.CaptureStart}, dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.File, filepath.Join(dir, "captures")+string(filepath.Separator)) {
		t.Fatalf("default file %s, want one in the state directory", st.File)
	}
	c := s.cur
	pkt := make([]byte, 1000)
	pkt[0] = 0x45
	deadline := time.Now().Add(10 * time.Second)
	for s.status().Running {
		if time.Now().After(deadline) {
			t.Fatal("the capture never reached its cap")
		}
		c.tap(false, pkt)
		time.Sleep(time.Millisecond)
	}
	got := s.status()
	fi, err := os.Stat(st.File)
	if err != nil || fi.Size() > 10<<10 || fi.Size() != got.Bytes || !strings.Contains(got.Ending, "size cap") {
		t.Fatalf("ended %+v; file %d bytes (%v), want at most %d", got, fi.Size(), err, 10<<10)
	}
	if _, err := s.stopCapture(); err != errNoCapture {
		t.Fatalf("stop after the cap: %v, want errNoCapture", err)
	}
}
