package agent

import (
	"fmt"
	"net/netip"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/steering"
)

// Another VPN may own the stub range (Tailscale, a carrier-grade NAT, a
// second ZTNA agent: 100.64.0.0/10 is popular). The agent would then take
// that VPN's traffic, its own routes being looked up first. At start it
// looks at the main routing table and, when the stub range is routed to
// another interface, takes its stub addresses from the first of
// client.stub_range_fallbacks that is free; after a network change that
// makes another choice (the other VPN came up, or went away) it restarts.

// stubChoice is the stub range the agent chose at start, and why.
type stubChoice struct {
	configured netip.Prefix
	fallbacks  []netip.Prefix
	chosen     netip.Prefix
	why        string // "" when the configured range is free
}

// pickStubRange returns the first of configured and fallbacks that owner
// finds no other interface routing, and why it is not the configured one.
// When all are taken the configured range is kept.
func pickStubRange(configured netip.Prefix, fallbacks []netip.Prefix, owner func(netip.Prefix) string) (netip.Prefix, string) {
	taken := owner(configured)
	if taken == "" {
		return configured, ""
	}
	why := fmt.Sprintf("%s is routed to %s", configured, taken)
	for _, fb := range fallbacks {
		o := owner(fb)
		if o == "" {
			return fb, why + "; stub addresses come from " + fb.String()
		}
		why += fmt.Sprintf(", %s to %s", fb, o)
	}
	if len(fallbacks) == 0 {
		return configured, why + " and no client.stub_range_fallbacks are set: kept"
	}
	return configured, why + ": no free fallback, kept"
}

// routeOwner asks the platform which other interface routes p ("" when
// none, or when it cannot tell).
func (p *parts) routeOwner(pfx netip.Prefix) string {
	tun := p.tunName // the device's real name once it exists (utun7, say)
	if tun == "" {
		tun = p.a.cfg.TUNName
	}
	owner, err := p.a.cfg.RouteOwner(pfx, tun)
	if err != nil {
		p.log.Warn("read the routing table", zap.Stringer("prefix", pfx), zap.Error(err))
		return ""
	}
	return owner
}

// chooseStubRange picks the stub range for this start and returns snap
// compiled with it.
func (p *parts) chooseStubRange(snap *steering.Snapshot) (*steering.Snapshot, error) {
	c := stubChoice{configured: snap.StubRange(), fallbacks: snap.StubRangeFallbacks()}
	c.chosen, c.why = pickStubRange(c.configured, c.fallbacks, p.routeOwner)
	p.stubChoice = c
	if c.why != "" {
		p.log.Warn("stub range taken by another interface", zap.String("reason", c.why))
	}
	if c.chosen == c.configured {
		return snap, nil
	}
	return p.compile(snap.Config())
}

// compile compiles a config with the stub range chosen at start.
func (p *parts) compile(c *steering.Config) (*steering.Snapshot, error) {
	if ch := p.stubChoice; ch.chosen.IsValid() && ch.chosen != ch.configured {
		c = steering.WithStubRange(c, ch.chosen)
	}
	return steering.Compile(c)
}

// recheckStubRange restarts the agent when the network changed the choice.
func (p *parts) recheckStubRange() {
	c := p.stubChoice
	chosen, why := pickStubRange(c.configured, c.fallbacks, p.routeOwner)
	if chosen == c.chosen {
		return
	}
	if why == "" {
		why = c.configured.String() + " is free again"
	}
	submit(p.reqs, request{kind: reqRestart, gen: p.gen, why: "stub range: " + why}, p.ctx.Done())
}
