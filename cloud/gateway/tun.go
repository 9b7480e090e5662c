package gateway

import (
	"errors"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/ztagent/ztagent/tunnel/l3e"
)

var errNoCert = errors.New("no client certificate")

// readTUN forwards the packets the corporate network sends to VPN addresses
// to the devices that own them, until the TUN is closed.
func (g *Gateway) readTUN() {
	dev := g.cfg.TUN
	n := max(1, dev.BatchSize())
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	for {
		count, err := dev.Read(bufs, sizes, tunOffset)
		for i := range count {
			g.fromTUN(bufs[i][tunOffset-1 : tunOffset+sizes[i]])
		}
		// Too many segments loses part of one GRO batch; anything else
		// means the TUN is gone (closed by Run's teardown).
		if err != nil && !errors.Is(err, tun.ErrTooManySegments) {
			return
		}
	}
}

// fromTUN sends rec (a free byte, then the packet) to the device that owns
// the packet's destination, if that device's routes allow it.
func (g *Gateway) fromTUN(rec []byte) {
	fl, err := l3e.Classify(rec[1:])
	if err != nil {
		g.stats.add(dropMalformed)
		return
	}
	a := g.lookup(fl.Dst)
	switch {
	case a == nil:
		g.stats.add(dropNoRoute)
	case !a.filter.Load().Inbound(&fl):
		g.stats.add(dropPolicy)
	default:
		g.stats.fromCorp.Add(1)
		g.toDevice(a, rec)
	}
}
