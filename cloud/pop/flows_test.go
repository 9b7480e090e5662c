package pop

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

// dialBurst connects n times to dst at once and returns the connections made,
// how many failed, how many took more than a second, and how long it all took.
func dialBurst(peer *netstacktest.Peer, dst netip.AddrPort, n int) (conns []*netstacktest.Conn, failed, slow int, took time.Duration) {
	all := make([]*netstacktest.Conn, n)
	var nFailed, nSlow atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			t0 := time.Now()
			c, err := peer.DialTCP(ctx, dst)
			if time.Since(t0) > time.Second {
				nSlow.Add(1)
			}
			if err != nil {
				nFailed.Add(1)
				return
			}
			all[i] = c
		}()
	}
	wg.Wait()
	took = time.Since(start)
	for _, c := range all {
		if c != nil {
			conns = append(conns, c)
		}
	}
	return conns, int(nFailed.Load()), int(nSlow.Load()), took
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
