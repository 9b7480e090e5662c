package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v2"
	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l3e"
)

// tunOffset is where a packet starts in the gateway's buffers: the TUN needs
// headroom before it (wireguard-go's tun writes a virtio header there), and
// the byte just before the packet holds the message type, so a packet read
// from the TUN is sent, and one received is written, without a copy.
const tunOffset = 16

// bufSize holds the largest record plus the headroom.
const bufSize = tunOffset + 1<<16

// assoc is one device's DTLS association.
type assoc struct {
	g      *Gateway
	conn   *dtls.Conn
	peer   *x509.Certificate
	dev    string
	addr   netip.Addr
	log    *zap.Logger
	filter atomic.Pointer[l3e.Filter]
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
func (g *Gateway) handshake(ctx context.Context, raw net.Conn) *assoc {
	hctx, cancel := context.WithTimeout(ctx, g.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := dtls.ServerWithContext(hctx, l3e.CountRecords(raw, &g.stats.records), g.conf)
	if err != nil {
		g.stats.add(dropHandshake)
		g.log.Info("L3E handshake failed", zap.Stringer("peer", raw.RemoteAddr()), zap.Error(err))
		raw.Close()
		return nil
	}
	a, d, err := g.admit(conn)
	if err != nil {
		g.stats.add(dropRefused)
		g.log.Info("L3E device refused", zap.Stringer("peer", raw.RemoteAddr()), zap.Error(err))
		conn.Write(l3e.Bye(err.Error()))
		conn.Close()
		return nil
	}
	// Routes in force, then registered, then the template sent: whatever
	// the device sends once it has its template finds its way back, and
	// nothing meets the association without its routes.
	recs, err := a.prepare(d.Template)
	if err != nil {
		a.log.Warn("L3E template refused", zap.Error(err))
		a.close("template: " + err.Error())
		return nil
	}
	g.register(a)
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
	a.log.Info("L3E association up", zap.Stringer("peer", raw.RemoteAddr()))
	return a
}

// admit identifies the device of a new association and gives it its address.
func (g *Gateway) admit(conn *dtls.Conn) (*assoc, Device, error) {
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
	a := &assoc{g: g, conn: conn, peer: peer, dev: d.ID, addr: addr,
		log: g.log.With(zap.String("device", d.ID), zap.String("user", d.User), zap.Stringer("vpn", addr))}
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

func (a *assoc) send(recs [][]byte) error {
	for _, r := range recs {
		if _, err := a.conn.Write(r); err != nil {
			return err
		}
	}
	return nil
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

// close says bye and closes the association; serve then returns.
func (a *assoc) close(reason string) {
	a.closeOnce.Do(func() {
		a.conn.SetWriteDeadline(time.Now().Add(time.Second))
		a.conn.Write(l3e.Bye(reason))
		// A zero deadline ends the timer goroutine pion keeps per deadline.
		a.conn.SetWriteDeadline(time.Time{})
		a.conn.Close()
	})
}

// serve reads the device's records until the association ends.
func (a *assoc) serve() {
	defer a.g.unregister(a)
	defer a.close("")
	defer a.conn.SetReadDeadline(time.Time{})
	buf := make([]byte, bufSize)
	// A device silent for two to three keepalive intervals is gone. The
	// deadline is moved once an interval, not per record: pion starts a
	// goroutine for every deadline set.
	ka := a.g.cfg.Keepalive
	var armed time.Time
	for {
		if now := time.Now(); now.Sub(armed) >= ka {
			a.conn.SetReadDeadline(now.Add(2 * ka))
			armed = now
		}
		n, err := a.conn.Read(buf[tunOffset-1:])
		if err != nil {
			a.log.Info("L3E association down", zap.Error(err))
			return
		}
		rec := buf[tunOffset-1 : tunOffset-1+n]
		switch rec[0] {
		case l3e.TypePacket:
			a.g.fromDevice(a, buf, n-1)
		case l3e.TypeKeepalive:
			if r, err := l3e.KeepaliveReply(rec); err == nil {
				a.conn.Write(r)
			} else {
				a.g.stats.add(dropMalformed)
			}
		case l3e.TypeKeepaliveReply:
		case l3e.TypeBye:
			a.log.Info("L3E device said bye", zap.ByteString("reason", rec[1:]))
			return
		default:
			a.g.stats.add(dropMalformed)
		}
	}
}

// fromDevice forwards the packet buf[tunOffset:tunOffset+n] that a sent: to
// another device of the pool, or to the corporate network.
func (g *Gateway) fromDevice(a *assoc, buf []byte, n int) {
	pkt := buf[tunOffset : tunOffset+n]
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
			g.toDevice(b, buf[tunOffset-1:tunOffset+n])
		}
		return
	}
	if g.tunw == nil {
		g.stats.add(dropNoRoute)
		return
	}
	g.tunw.Write(pkt)
}

// toDevice sends rec (type byte and packet) to b.
func (g *Gateway) toDevice(b *assoc, rec []byte) {
	rec[0] = l3e.TypePacket
	if _, err := b.conn.Write(rec); err != nil {
		g.stats.add(dropSend)
		return
	}
	g.stats.toDevices.Add(1)
}
