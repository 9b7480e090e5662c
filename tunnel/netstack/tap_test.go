package netstack

import (
	"io"
	"net/netip"
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tapLog records what a Tap saw.
type tapLog struct {
	mu       sync.Mutex
	in, out  int
	syn      bool // the client's SYN to the destination, read from the TUN
	synAck   bool // the stack's SYN-ACK from it, written to the TUN
	outBytes int
}

func (l *tapLog) tap(dst netip.AddrPort) Tap {
	return func(out bool, p []byte) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if out {
			l.out++
			l.outBytes += len(p)
		} else {
			l.in++
		}
		if header.IPVersion(p) != header.IPv4Version {
			return
		}
		ip := header.IPv4(p)
		tcp := header.TCP(ip.Payload())
		switch {
		case !out && netip.AddrFrom4(ip.DestinationAddress().As4()) == dst.Addr() && tcp.DestinationPort() == dst.Port() && tcp.Flags() == header.TCPFlagSyn:
			l.syn = true
		case out && netip.AddrFrom4(ip.SourceAddress().As4()) == dst.Addr() && tcp.SourcePort() == dst.Port() && tcp.Flags() == header.TCPFlagSyn|header.TCPFlagAck:
			l.synAck = true
		}
	}
}

func TestTapSeesBothDirections(t *testing.T) {
	u := newUpstream(t)
	h := newHarness(t, Config{TCP: u.handler})
	var log tapLog
	h.st.SetTap(log.tap(stubDst))
	c, err := h.dialTCP(testCtx(t), stubDst)
	if err != nil {
		t.Fatal(err)
	}
	srv := u.next(t)
	go echo(srv)
	want := make([]byte, 256<<10)
	go func() {
		c.Write(want)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || len(got) != len(want) {
		t.Fatalf("echoed %d bytes (%v), want %d", len(got), err, len(want))
	}
	h.st.SetTap(nil)
	log.mu.Lock()
	in, out, syn, synAck, outBytes := log.in, log.out, log.syn, log.synAck, log.outBytes
	log.mu.Unlock()
	if !syn || !synAck {
		t.Errorf("the tap saw the SYN %v, the SYN-ACK %v; want both", syn, synAck)
	}
	if in == 0 || out == 0 || outBytes < len(want) {
		t.Errorf("the tap saw %d packets in, %d out (%d bytes); want the flow's %d bytes out", in, out, outBytes, len(want))
	}

	// Removed, it sees nothing more.
	c2, err := h.dialTCP(testCtx(t), stubDst)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.in != in || log.out != out {
		t.Errorf("after SetTap(nil) the tap saw %d more packets in, %d more out", log.in-in, log.out-out)
	}
}
