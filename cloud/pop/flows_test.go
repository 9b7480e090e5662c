package pop

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l7"
	"github.com/ztagent/ztagent/tunnel/netstack"
	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

// TestManyFlows opens 1,000 TCP flows at once from a client OS through the
// agent's data path (netstack.Stack, l7.Client) to the PoP, a publisher and an
// echo target: every connect succeeds without a dropped SYN, every flow
// carries an echo, and once the client has closed them all, nothing of them is
// left open in the stack or the tunnel.
func TestManyFlows(t *testing.T) {
	const flows = 1000
	l := newLab(t, labOptions{})
	port := startServer(t, smallEcho)
	peer, err := netstacktest.NewPeer(netstacktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() }) // after the stack's Close, which closes the device
	target := l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho}
	st, err := netstack.New(peer.Device(), netstack.Config{
		Log: zap.NewNop(),
		TCP: func(ctx context.Context, _ netstack.Flow) (net.Conn, error) { return l.client.Open(ctx, target) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	conns, b := dialBurst(peer, netip.MustParseAddrPort("100.64.0.5:80"), flows)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	if b.failed > 0 {
		t.Errorf("%d of %d connects failed", b.failed, flows)
	}
	if n := st.Stats().SYNDropped; n > 0 {
		t.Errorf("%d SYNs dropped", n)
	}
	if n := pingAll(conns); n > 0 {
		t.Errorf("%d of %d flows did not echo", n, len(conns))
	}
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "every flow closed", func() bool {
		return st.Stats().TCPOpen == 0 && l.client.Status().Streams == 0
	})
}

// burst is how a burst of connects went.
type burst struct {
	failed   int
	took     time.Duration // until every connect had ended
	p50, max time.Duration // connect times
}

// dialBurst connects n times to dst at once (a connect that takes over 30 s
// fails) and returns the connections made.
func dialBurst(peer *netstacktest.Peer, dst netip.AddrPort, n int) ([]*netstacktest.Conn, burst) {
	all := make([]*netstacktest.Conn, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			t0 := time.Now()
			all[i], _ = peer.DialTCP(ctx, dst)
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	b := burst{took: time.Since(start)}
	var conns []*netstacktest.Conn
	for _, c := range all {
		if c != nil {
			conns = append(conns, c)
		}
	}
	b.failed = n - len(conns)
	slices.Sort(took)
	if n > 0 {
		b.p50, b.max = took[n/2], took[n-1]
	}
	return conns, b
}

// pingAll sends one byte on every connection and reads its echo, 64 at a time,
// and returns how many failed.
func pingAll(conns []*netstacktest.Conn) int {
	var failed atomic.Int64
	work := make(chan *netstacktest.Conn)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var one [1]byte
			for c := range work {
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := c.Write(one[:]); err != nil {
					failed.Add(1)
					continue
				}
				if _, err := io.ReadFull(c, one[:]); err != nil {
					failed.Add(1)
				}
				c.SetDeadline(time.Time{})
			}
		}()
	}
	for _, c := range conns {
		work <- c
	}
	close(work)
	wg.Wait()
	return int(failed.Load())
}

// smallEcho echoes with a small buffer, so that the target's share of the
// child's memory stays small.
func smallEcho(c *net.TCPConn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
