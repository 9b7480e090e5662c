package agent

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// The TUN MTU, unless the --mtu flag sets it, follows the uplink that the
// tunnel to the PoP takes. The L7 tunnel terminates TCP in the userspace
// stack and carries UDP datagrams whole in HTTP/2 capsules, so no packet of
// the TUN reaches the uplink as it is: the TUN MTU only decides what the
// stack admits without fragments and the MSS between an app and the stack.
// Following the uplink gives apps the MTU they would see going direct (a
// 1,400-byte datagram with DF set passes on a 1,500-byte uplink, as it would
// without the agent). What crosses the uplink is the agent's own TLS
// connection, whose MSS platform's bypass dialer clamps (package pathmtu).
const (
	// minTUNMTU is the IPv6 minimum, which the userspace stack requires.
	minTUNMTU = 1280
	// maxTUNMTU bounds the stack's preallocated packet buffers on a jumbo
	// frame uplink.
	maxTUNMTU = 9000
	// fallbackTUNMTU is used when the uplink's MTU cannot be read:
	// wireguard-go's default, the agent's before it followed the uplink.
	fallbackTUNMTU = 1420
	// uplinkTimeout bounds resolving a PoP's name to find its uplink.
	uplinkTimeout = 5 * time.Second
)

// tunMTU returns the MTU for the TUN device: the --mtu flag's, or the
// uplink's to the first PoP whose uplink can be read, within
// [minTUNMTU, maxTUNMTU].
func (p *parts) tunMTU(ctx context.Context) int {
	if m := p.a.cfg.MTU; m != 0 {
		return m
	}
	ctx, cancel := context.WithTimeout(ctx, uplinkTimeout)
	defer cancel()
	for _, pop := range p.synced.Load().cfg.DialList() {
		m, err := p.a.cfg.UplinkMTU(ctx, pop.Address)
		if err != nil {
			p.log.Info("uplink MTU", zap.String("pop", pop.Address), zap.Error(err))
			continue
		}
		mtu := min(max(m, minTUNMTU), maxTUNMTU)
		p.log.Info("TUN MTU follows the uplink", zap.String("pop", pop.Address),
			zap.Int("uplink_mtu", m), zap.Int("mtu", mtu))
		return mtu
	}
	p.log.Warn("no uplink MTU to follow", zap.Int("mtu", fallbackTUNMTU))
	return fallbackTUNMTU
}
