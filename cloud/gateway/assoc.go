package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v2"
	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l3e"
	"github.com/ztagent/ztagent/tunnel/l3e/record"
)

// assoc is one device's DTLS association: pion made the handshake and keeps
// its alerts; our record layer (keys, seal, open) carries the messages.
type assoc struct {
	g      *Gateway
	r      *remote
	conn   *dtls.Conn
	seal   *record.Sealer
	open   *record.Opener // only the receive loop uses it
	peer   *x509.Certificate
	dev    string
	addr   netip.Addr
	log    *zap.Logger
	filter atomic.Pointer[l3e.Filter]
	last   atomic.Int64 // unix nanoseconds of the last record received
	closed atomic.Bool
	// tmpl is the last template pushed and gen its generation; only
	// the handshake and recheck touch them, under tmu.
	tmu  sync.Mutex
	tmpl []byte
	gen  uint32

	closeOnce sync.Once
}

// handshake runs the DTLS handshake with one new peer and, when it is admitted,
// registers its association and pushes the template. It returns nil when the
// peer was refused.
func (g *Gateway) handshake(ctx context.Context, r *remote) *assoc {
	hctx, cancel := context.WithTimeout(ctx, g.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := dtls.ServerWithContext(hctx, r.feed, g.conf)
	if err != nil {
		g.stats.add(dropHandshake)
		g.log.Info("L3E handshake failed", zap.Stringer("peer", r.addr), zap.Error(err))
		return nil
	}
	a, d, err := g.admit(conn, r)
	if err != nil {
		g.stats.add(dropRefused)
		g.log.Info("L3E device refused", zap.Stringer("peer", r.addr), zap.Error(err))
		conn.Write(l3e.Bye(err.Error()))
		conn.Close()
		return nil
	}
	// Routes in force, then registered and keyed, then the template sent:
	// whatever the device sends once it has its template finds its way
	// back, and nothing meets the association without its routes.
	recs, err := a.prepare(d.Template)
	if err != nil {
		a.log.Warn("L3E template refused", zap.Error(err))
		a.close("template: " + err.Error())
		return nil
	}
	g.register(a)
	g.established(r, a)
	if ctx.Err() != nil { // Run's teardown may have missed it
		a.close("gateway shutting down")
	}
	if err := a.send(recs); err != nil {
		a.log.Warn("L3E template not sent", zap.Error(err))
		a.close("")
		g.unregister(a)
		return nil
	}
	g.stats.handshakes.Add(1)
	a.log.Info("L3E association up", zap.Stringer("peer", r.addr))
	return a
}

// admit identifies the device of a new association, takes its keys and
// gives it its address.
func (g *Gateway) admit(conn *dtls.Conn, r *remote) (*assoc, Device, error) {
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, Device{}, errNoCert
	}
	peer, err := x509.ParseCertificate(certs[0])
	if err != nil {
		return nil, Device{}, err
	}
	d, err := g.cfg.Admit(peer)
	if err != nil {
		return nil, Device{}, err
	}
	addr, err := g.pool.addr(d.ID)
	if err != nil {
		return nil, Device{}, err
	}
	a := &assoc{g: g, r: r, conn: conn, peer: peer, dev: d.ID, addr: addr,
		log: g.log.With(zap.String("device", d.ID), zap.String("user", d.User), zap.Stringer("vpn", addr))}
	a.last.Store(time.Now().UnixNano())
	keys, err := record.KeysOf(conn)
	if err == nil {
		a.seal, a.open, err = keys.Both()
	}
	if err != nil {
		return nil, Device{}, err
	}
	a.log.Debug("L3E records keyed", zap.Stringer("keys", keys))
	return a, d, nil
}

// push installs t for this association and sends it when it differs from
// the last one sent.
func (a *assoc) push(t l3e.Template) error {
	recs, err := a.prepare(t)
	if err != nil {
		return err
	}
	return a.send(recs)
}

// prepare completes t for this association and installs its routes; it
// returns the records that carry it, none when it is the one in force.
func (a *assoc) prepare(t l3e.Template) ([][]byte, error) {
	t.V = l3e.TemplateVersion
	t.Address = netip.PrefixFrom(a.addr, a.g.cfg.Pool.Bits())
	t.MTU = a.g.cfg.MTU
	t.KeepaliveSeconds = max(1, int(a.g.cfg.Keepalive/time.Second))
	data, err := t.Encode()
	if err != nil {
		return nil, err
	}
	f, err := l3e.NewFilter(t.Routes)
	if err != nil {
		return nil, err
	}
	a.tmu.Lock()
	defer a.tmu.Unlock()
	if bytes.Equal(data, a.tmpl) {
		return nil, nil
	}
	a.gen++
	recs, err := l3e.AppendChunks(nil, a.gen, data)
	if err != nil {
		return nil, err
	}
	a.filter.Store(f)
	a.tmpl = data
	return recs, nil
}

// send sends each message in a record of its own.
func (a *assoc) send(msgs [][]byte) error {
	for _, m := range msgs {
		if err := a.sendMsg(m); err != nil {
			return err
		}
	}
	return nil
}

// sendMsg seals msg (a control message) into a record and sends it.
func (a *assoc) sendMsg(msg []byte) error {
	rec, err := a.seal.SealCopy(msg)
	if err != nil {
		return err
	}
	return a.g.sock.WriteTo(rec, a.r.udp)
}

// recheck admits the device again: refused, it is told why and dropped;
// admitted, a changed template is pushed.
func (a *assoc) recheck() {
	d, err := a.g.cfg.Admit(a.peer)
	if err != nil {
		a.g.stats.add(dropRefused)
		a.log.Info("L3E device no longer admitted", zap.Error(err))
		a.close(err.Error())
		return
	}
	if err := a.push(d.Template); err != nil {
		a.log.Warn("L3E template not pushed", zap.Error(err))
	}
}

// close says bye (when reason is set) and closes the association; serve
// then returns.
func (a *assoc) close(reason string) {
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		if reason != "" {
			a.sendMsg(l3e.Bye(reason))
		}
		a.conn.Close() // pion's close_notify; closes the FeedConn
	})
}

// serve delivers what pion decrypts (a foreign peer's records, or records
// that overtook the keying) until the association ends.
func (a *assoc) serve() {
	defer a.g.unregister(a)
	defer a.close("")
	buf := make([]byte, record.Prefix+l3e.DatagramSize+record.TagLen)
	for {
		n, err := a.conn.Read(buf[record.Prefix : record.Prefix+l3e.DatagramSize])
		if err != nil {
			a.log.Info("L3E association down", zap.Error(err))
			return
		}
		a.last.Store(time.Now().UnixNano())
		if n > 0 {
			a.handle(buf, n, nil)
		}
	}
}

// handle acts on the message room[record.Prefix:][:n] (type byte first); a
// packet for another device is sealed in room and queued on q (sent at once
// when q is nil).
func (a *assoc) handle(room []byte, n int, q *l3e.SendQueue) {
	msg := room[record.Prefix : record.Prefix+n]
	switch msg[0] {
	case l3e.TypePacket:
		a.g.fromDevice(a, room, n, q)
	case l3e.TypeKeepalive:
		if r, err := l3e.KeepaliveReply(msg); err == nil {
			a.sendMsg(r)
		} else {
			a.g.stats.add(dropMalformed)
		}
	case l3e.TypeKeepaliveReply:
	case l3e.TypeBye:
		a.log.Info("L3E device said bye", zap.ByteString("reason", msg[1:]))
		a.close("")
	default:
		a.g.stats.add(dropMalformed)
	}
}

// fromDevice forwards the packet in room (see handle) that a sent: to
// another device of the pool, or to the corporate network.
func (g *Gateway) fromDevice(a *assoc, room []byte, n int, q *l3e.SendQueue) {
	pkt := room[record.Prefix+1 : record.Prefix+n]
	fl, err := l3e.Classify(pkt)
	switch {
	case err != nil:
		g.stats.add(dropMalformed)
		return
	case fl.Src != a.addr:
		g.stats.add(dropSpoofed)
		return
	case !a.filter.Load().Outbound(&fl):
		g.stats.add(dropPolicy)
		return
	}
	g.stats.fromDevices.Add(1)
	if g.cfg.Pool.Contains(fl.Dst) && fl.Dst != g.pool.gatewayAddr() {
		b := g.lookup(fl.Dst)
		switch {
		case b == nil:
			g.stats.add(dropNoRoute)
		case !b.filter.Load().Inbound(&fl):
			g.stats.add(dropPolicy)
		default:
			g.toDevice(b, room, n, q)
		}
		return
	}
	if g.tunw == nil {
		g.stats.add(dropNoRoute)
		return
	}
	g.tunw.Write(pkt)
}

// toDevice seals the packet message room[record.Prefix:][:n] for b in place
// and queues it on q, or sends it at once when q is nil.
func (g *Gateway) toDevice(b *assoc, room []byte, n int, q *l3e.SendQueue) {
	room[record.Prefix] = l3e.TypePacket
	rec, err := b.seal.Seal(room, n)
	if err == nil {
		if q != nil {
			q.Add(g.sock, rec, b.r.udp) // a failure is counted as dropSend
		} else {
			err = g.sock.WriteTo(rec, b.r.udp)
		}
	}
	if err != nil {
		g.stats.add(dropSend)
		return
	}
	g.stats.toDevices.Add(1)
}
