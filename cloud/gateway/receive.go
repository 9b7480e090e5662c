package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ztagent/ztagent/tunnel/l3e"
	"github.com/ztagent/ztagent/tunnel/l3e/record"
)

// remote is one peer address: the FeedConn its handshake runs on and, once
// admitted, its association.
type remote struct {
	addr  netip.AddrPort
	udp   *net.UDPAddr // addr, for sendmmsg
	feed  *l3e.FeedConn
	assoc *assoc // set (under Gateway.rmu) once the association is up
}

// receive reads the socket until it is closed: a recvmmsg batch at a time,
// the records of established associations opened in place and handled,
// everything else handed to the remote's FeedConn (a new remote only with a
// handshake record, so stray datagrams make no state). The records it
// forwards from device to device leave in one sendmmsg per batch.
func (g *Gateway) receive(ctx context.Context) error {
	ms := g.sock.NewMessages(l3e.SockBatch)
	q := l3e.NewSendQueue(&g.stats.drops[dropSend])
	for {
		n, err := g.sock.ReadBatch(ms)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("gateway: receive: %w", err)
		}
		now := time.Now().UnixNano() // once a batch: silence is judged in seconds
		for i := range n {
			g.message(ctx, &ms[i], now, q)
		}
		q.Flush(g.sock) // a failure is counted as dropSend
	}
}

// message handles the datagrams m holds (several when the kernel coalesced
// a run), all from one peer, whose remote is looked up once; they were
// received at now (unix nanoseconds).
func (g *Gateway) message(ctx context.Context, m *l3e.Message, now int64, q *l3e.SendQueue) {
	from, ok := m.Addr.(*net.UDPAddr)
	if !ok {
		return
	}
	ap := from.AddrPort()
	g.rmu.Lock()
	r := g.remotes[ap]
	var a *assoc
	if r != nil {
		a = r.assoc
	}
	g.rmu.Unlock()
	g.sock.Segments(m, func(buf []byte, off, end int) {
		g.stats.records.Datagrams.Add(1)
		if r == nil {
			r = g.newRemote(ctx, ap, from, buf[off:end])
		} else {
			g.datagram(r, a, buf[off:], end-off, now, q)
		}
	})
}

// datagram handles the datagram buf[:n] from r, whose association (nil
// until it is keyed) is a; a record it forwards to another device is sealed
// in buf and queued on q.
func (g *Gateway) datagram(r *remote, a *assoc, buf []byte, n int, now int64, q *l3e.SendQueue) {
	d := buf[:n]
	switch {
	case a != nil && !a.closed.Load() && record.Ours(d):
		msg, err := a.open.Open(d)
		if err != nil {
			g.stats.records.Count(err)
			return
		}
		a.last.Store(now)
		a.handle(buf, len(msg), q)
	default:
		if l3e.Truncated(d) {
			g.stats.records.Truncated.Add(1)
		}
		r.feed.Feed(d)
	}
}

// newRemote starts a handshake with a new peer address, when d is a
// handshake record and a handshake slot is free, and returns its remote
// (nil when it started none).
func (g *Gateway) newRemote(ctx context.Context, ap netip.AddrPort, from *net.UDPAddr, d []byte) *remote {
	if !isClientHello(d) {
		return nil
	}
	select {
	case g.hsem <- struct{}{}:
	default:
		g.stats.add(dropBusy)
		return nil
	}
	udp := &net.UDPAddr{IP: append(net.IP(nil), from.IP...), Port: from.Port, Zone: from.Zone}
	conn := g.sock.Conn().(*net.UDPConn)
	r := &remote{addr: ap, udp: udp,
		feed: l3e.NewFeedConn(conn.LocalAddr(), udp, func(p []byte) (int, error) { return conn.WriteTo(p, udp) })}
	g.rmu.Lock()
	defer g.rmu.Unlock()
	if g.stopped {
		<-g.hsem
		return nil
	}
	g.remotes[ap] = r
	r.feed.Feed(d)
	g.wg.Add(1)
	go func() { // owned by g: Run waits for g.wg
		defer g.wg.Done()
		defer g.forget(r)
		a := g.handshake(ctx, r)
		<-g.hsem
		if a != nil {
			a.serve()
		}
	}()
	return r
}

// forget drops the remote once its handshake failed or its association ended.
func (g *Gateway) forget(r *remote) {
	r.feed.Close()
	g.rmu.Lock()
	defer g.rmu.Unlock()
	if g.remotes[r.addr] == r {
		delete(g.remotes, r.addr)
	}
}

// established makes a the association of r: from now on the records of
// ours from r are opened by the receive loop.
func (g *Gateway) established(r *remote, a *assoc) {
	g.rmu.Lock()
	r.assoc = a
	g.rmu.Unlock()
}
