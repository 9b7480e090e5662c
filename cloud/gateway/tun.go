package gateway

import (
	"errors"

	"github.com/ztagent/ztagent/tunnel/l3e"
	"github.com/ztagent/ztagent/tunnel/l3e/record"
)

var errNoCert = errors.New("no client certificate")

// readTUN forwards the packets the corporate network sends to VPN addresses
// to the devices that own them, until the TUN is closed (by Run's teardown):
// sealed in place, the records of one TUN batch leave in one sendmmsg.
func (g *Gateway) readTUN() {
	q := l3e.NewSendQueue(&g.stats.drops[dropSend])
	l3e.ReadTUN(g.cfg.TUN, func(buf []byte, n int) bool {
		g.fromTUN(buf[l3e.TUNOffset-1-record.Prefix:], n, q)
		return true
	}, func() { q.Flush(g.sock) })
}

// fromTUN sends the packet room[record.Prefix+1:][:n] to the device that
// owns its destination, if that device's routes allow it.
func (g *Gateway) fromTUN(room []byte, n int, q *l3e.SendQueue) {
	fl, err := l3e.Classify(room[record.Prefix+1 : record.Prefix+1+n])
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
		g.toDevice(a, room, 1+n, q)
	}
}
