package gateway

import (
	"errors"

	"github.com/ztagent/ztagent/tunnel/l3e"
)

var errNoCert = errors.New("no client certificate")

// readTUN forwards the packets the corporate network sends to VPN addresses
// to the devices that own them, until the TUN is closed (by Run's teardown).
func (g *Gateway) readTUN() {
	l3e.ReadTUN(g.cfg.TUN, func(buf []byte, n int) bool {
		g.fromTUN(buf[l3e.TUNOffset-1 : l3e.TUNOffset+n])
		return true
	}, nil)
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
