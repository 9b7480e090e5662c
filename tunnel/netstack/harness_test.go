package netstack

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

const testMTU = 1420

var (
	clientV4 = netip.MustParseAddr("10.0.0.2")
	clientV6 = netip.MustParseAddr("fd00::2")
)

// harness joins a Stack to a netstacktest.Peer playing the client OS. The
// peer's stack verifies every checksum the bridge produces.
type harness struct {
	t         testing.TB
	peer      *netstacktest.Peer
	client    *stack.Stack // the peer's stack, for its statistics
	st        *Stack
	closeOnce sync.Once
}

func newHarness(t testing.TB, cfg Config, opts ...func(*netstacktest.Options)) *harness {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = zaptest.NewLogger(t)
	}
	o := netstacktest.Options{MTU: testMTU, Batch: 8, Addrs: []netip.Addr{clientV4, clientV6}}
	for _, f := range opts {
		f(&o)
	}
	peer, err := netstacktest.NewPeer(o)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, peer: peer, client: peer.Stack()}
	h.st, err = New(peer.Device(), cfg)
	if err != nil {
		peer.Close()
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	h.closeOnce.Do(func() {
		if err := h.st.Close(); err != nil {
			h.t.Errorf("Close: %v", err)
		}
		h.peer.Close()
		if n := h.peer.Malformed(); n != 0 {
			h.t.Errorf("the client rejected %d packets from the bridge as malformed", n)
		}
	})
}

func (h *harness) dialTCP(ctx context.Context, dst netip.AddrPort) (*netstacktest.Conn, error) {
	return h.peer.DialTCP(ctx, dst)
}

func (h *harness) dialUDP(dst netip.AddrPort) (*gonet.UDPConn, error) {
	return h.peer.DialUDP(dst)
}

func (h *harness) inject(pkt []byte) {
	if err := h.peer.Inject(pkt); err != nil {
		h.t.Fatal(err)
	}
}
