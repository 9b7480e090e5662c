package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l7"
	"github.com/ztagent/ztagent/tunnel/netstack"
)

// Errors a flow is refused with; the userspace stack answers the SYN with RST.
var (
	errUnknownStub = errors.New("no name is assigned to this stub address")
	errNotSteered  = errors.New("flow matches no private app")
)

// flowCounters count handleTCP's outcomes for ztdiag status.
type flowCounters struct {
	steered, refused, notSteered, blocked atomic.Int64
}

// openTimeout bounds how long a new flow waits for the PoP to answer, so a
// client sees a reset instead of a hang when the path is broken.
const openTimeout = 15 * time.Second

// handleTCP decides a new TCP flow from the TUN device and opens its upstream.
// A stub destination is first mapped back to its FQDN; the steering snapshot
// then decides by name (or real address), protocol and port.
func (a *Agent) handleTCP(ctx context.Context, f netstack.Flow) (net.Conn, error) {
	d, host, stub := a.decide(f, steering.TCP)
	log := a.log.With(zap.Stringer("dst", f.Dst), zap.String("host", host))
	switch d.Action {
	case steering.L7:
		ctx, cancel := context.WithTimeout(ctx, openTimeout)
		defer cancel()
		c, err := a.l7.Open(ctx, l7.Target{Host: host, Port: f.Dst.Port(), AppID: d.App.ID})
		if err != nil {
			a.flows.refused.Add(1)
			log.Info("flow refused", zap.String("app", d.App.ID), zap.Error(err))
			return nil, err
		}
		a.flows.steered.Add(1)
		log.Debug("flow steered", zap.String("app", d.App.ID))
		return c, nil
	case steering.Block:
		a.flows.blocked.Add(1)
		log.Info("flow blocked", zap.String("rule", d.Rule))
		return nil, fmt.Errorf("blocked by %s", d.Rule)
	default:
		// Only the stub range and app prefixes are routed into the TUN. An
		// unsteered flow to a real address there (a port outside the app's
		// definition, an address exception) goes where it would have gone
		// without the agent, on a socket that bypasses the agent's routes.
		// A stub address has no real destination: reset.
		a.flows.notSteered.Add(1)
		log.Debug("flow not steered", zap.String("reason", d.Reason))
		if host == "" {
			return nil, errUnknownStub
		}
		if stub || !platform.CanBypass {
			return nil, errNotSteered
		}
		ctx, cancel := context.WithTimeout(ctx, openTimeout)
		defer cancel()
		return platform.DialBypass(ctx, "tcp", f.Dst.String())
	}
}

// decide maps the flow to a steering decision and the host to ask the PoP for.
func (a *Agent) decide(f netstack.Flow, proto steering.Protocol) (d steering.Decision, host string, stub bool) {
	snap := a.snap.Load()
	dst := f.Dst.Addr().Unmap()
	flow := steering.Flow{Addr: dst, Proto: proto, Port: f.Dst.Port(), OS: runtime.GOOS}
	host = dst.String()
	switch {
	case snap.StubRange().Contains(dst):
		name, ok := a.stubs.Lookup(dst)
		if !ok {
			return steering.Decision{Action: steering.Direct, Reason: errUnknownStub.Error()}, "", true
		}
		a.stubs.Touch(dst, time.Now())
		flow.FQDN, host, stub = name, name, true
	default:
		// A real address a publisher resolved: steer it by its name.
		if name, ok := a.pub.name(dst); ok {
			a.pub.touch(dst, time.Now().Add(pubAddrLife))
			flow.FQDN, host = name, name
		}
	}
	d = snap.MatchFlow(flow)
	// Pinned-app exceptions apply only to flows that would be steered, so
	// only those pay for finding the flow's owner.
	if d.Steered() && snap.HasPinned(runtime.GOOS) {
		a.setOwner(&flow, proto.String(), f.Src, f.Dst)
		d = snap.MatchFlow(flow)
	}
	return d, host, stub
}

// setOwner fills in the identity of the process that owns a flow, for the
// pinned-app exceptions. A flow whose owner cannot be found is decided
// without one (it is steered as its app says).
func (a *Agent) setOwner(f *steering.Flow, proto string, local, remote netip.AddrPort) {
	o, err := a.cfg.Owners.Lookup(proto, local, remote)
	if err != nil {
		a.log.Debug("flow owner unknown", zap.String("proto", proto), zap.Stringer("local", local), zap.Error(err))
		return
	}
	f.Process, f.Path, f.AppID = o.Process, o.Path, o.AppID
}
