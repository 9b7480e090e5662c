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

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l7"
	"github.com/ztagent/ztagent/tunnel/netstack"
)

// Errors a flow is refused with; the userspace stack answers a TCP SYN with
// RST and a UDP datagram with ICMP destination unreachable.
var (
	errUnknownStub = errors.New("no name is assigned to this stub address")
	errNotSteered  = errors.New("flow matches no private app")
	errSuspended   = errors.New("private access is suspended until the user signs in again")
)

// flowCounters count the data path's outcomes for ztdiag status.
type flowCounters struct {
	steered, refused, notCarried, notSteered, blocked atomic.Int64
}

// openTimeout bounds how long a new flow waits for the PoP to answer, so a
// client sees a reset instead of a hang when the path is broken.
const openTimeout = 15 * time.Second

// handleTCP decides a new TCP flow from the TUN device and opens its upstream.
// A stub destination is first mapped back to its FQDN; the steering snapshot
// then decides by name (or real address), protocol and port. A flow the
// config steers is carried through the tunnel or refused, never sent direct.
func (p *parts) handleTCP(ctx context.Context, f netstack.Flow) (net.Conn, error) {
	d, host, stub := p.decide(f, steering.TCP)
	log := p.log.With(zap.Stringer("dst", f.Dst), zap.String("host", host))
	if why := steering.NotCarried(d); why != "" {
		p.flows.notCarried.Add(1)
		log.Info("flow refused: not carried", zap.String("app", d.App.ID), zap.String("reason", why))
		return nil, errors.New(why)
	}
	switch d.Action {
	case steering.L7:
		ctx, cancel := context.WithTimeout(ctx, openTimeout)
		defer cancel()
		c, err := p.l7.Open(ctx, l7.Target{Host: host, Port: f.Dst.Port(), AppID: d.App.ID})
		if err != nil {
			return nil, p.openRefused(log, d.App.ID, err)
		}
		p.flows.steered.Add(1)
		log.Debug("flow steered", zap.String("app", d.App.ID))
		return c, nil
	case steering.Block:
		p.flows.blocked.Add(1)
		log.Info("flow blocked", zap.String("rule", d.Rule))
		return nil, fmt.Errorf("blocked by %s", d.Rule)
	default:
		// Only the stub range and app prefixes are routed into the TUN. An
		// unsteered flow to a real address there (a port outside the app's
		// definition, an address exception) goes where it would have gone
		// without the agent, on a socket that bypasses the agent's routes.
		// A stub address has no real destination: reset.
		p.flows.notSteered.Add(1)
		log.Debug("flow not steered", zap.String("reason", d.Reason))
		if err := directOK(host, stub); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, openTimeout)
		defer cancel()
		return platform.DialDirect(ctx, "tcp", f.Dst.String())
	}
}

// handleUDP decides a new UDP flow (one per 4-tuple) as handleTCP does a TCP
// one, and carries a steered one through the tunnel as a connect-udp stream.
// A flow the tunnel cannot open is refused with ICMP "administratively
// prohibited"; the netstack closes the flow after client.udp_idle_timeout.
func (p *parts) handleUDP(ctx context.Context, f netstack.Flow) (netstack.DatagramConn, error) {
	d, host, stub := p.decide(f, steering.UDP)
	log := p.log.With(zap.Stringer("dst", f.Dst), zap.String("host", host), zap.String("proto", "udp"))
	if why := steering.NotCarried(d); why != "" {
		p.flows.notCarried.Add(1)
		log.Info("flow refused: not carried", zap.String("app", d.App.ID), zap.String("reason", why))
		return nil, fmt.Errorf("%w: %s", netstack.ErrProhibited, why)
	}
	switch d.Action {
	case steering.L7:
		ctx, cancel := context.WithTimeout(ctx, openTimeout)
		defer cancel()
		c, err := p.l7.OpenUDP(ctx, l7.Target{Host: host, Port: f.Dst.Port(), AppID: d.App.ID, Proto: l7.ProtoUDP})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", netstack.ErrProhibited, p.openRefused(log, d.App.ID, err))
		}
		p.flows.steered.Add(1)
		log.Debug("flow steered", zap.String("app", d.App.ID))
		return c, nil
	case steering.Block:
		p.flows.blocked.Add(1)
		log.Info("flow blocked", zap.String("rule", d.Rule))
		return nil, fmt.Errorf("%w: blocked by %s", netstack.ErrProhibited, d.Rule)
	default:
		p.flows.notSteered.Add(1)
		log.Debug("flow not steered", zap.String("reason", d.Reason))
		if err := directOK(host, stub); err != nil {
			return nil, fmt.Errorf("%w: %w", netstack.ErrPortUnreachable, err)
		}
		c, err := platform.DialDirect(ctx, "udp", f.Dst.String())
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// openRefused counts and logs a steered flow the tunnel did not open, and
// returns the error to refuse it with.
func (p *parts) openRefused(log *zap.Logger, app string, err error) error {
	p.flows.refused.Add(1)
	p.sel.staleOnRefusal(err)
	if p.a.State() == ctlapi.StateSuspended {
		err = errSuspended
	}
	log.Info("flow refused", zap.String("app", app), zap.Error(err))
	return err
}

// directOK says whether an unsteered flow can go direct: not to a stub
// address (it has no real destination), and only where the agent's own
// sockets can bypass its routes.
func directOK(host string, stub bool) error {
	switch {
	case host == "":
		return errUnknownStub
	case stub || !platform.CanBypass:
		return errNotSteered
	}
	return nil
}

// decide maps the flow to a steering decision and the host to ask the PoP for.
func (p *parts) decide(f netstack.Flow, proto steering.Protocol) (d steering.Decision, host string, stub bool) {
	snap := p.snap.Load()
	dst := f.Dst.Addr().Unmap()
	flow := steering.Flow{Addr: dst, Proto: proto, Port: f.Dst.Port(), OS: runtime.GOOS}
	host = dst.String()
	stub = p.stubs.Contains(dst)
	name, known := p.nameOf(snap, dst)
	if !known {
		return steering.Decision{Action: steering.Direct, Reason: errUnknownStub.Error()}, "", true
	}
	if name != "" {
		flow.FQDN, host = name, name
	}
	if !stub && p.onprem.onPrem() {
		// A flow that was routed in before the routes left on coming on
		// premises. A stub's flow is still carried: its address means
		// nothing on the corporate network.
		return steering.Decision{Action: steering.Direct, Reason: "on premises"}, host, false
	}
	d = snap.MatchFlow(flow)
	// Pinned-app exceptions apply only to flows that would be steered, so
	// only those pay for finding the flow's owner.
	if d.Steered() && snap.HasPinned(runtime.GOOS) {
		p.setOwner(&flow, proto.String(), f.Src, f.Dst)
		d = snap.MatchFlow(flow)
	}
	return d, host, stub
}

// nameOf returns the name behind dst, a flow's or an echo's destination, and
// marks it in use: a stub's name (known is false for a stub that stands for
// no name), or the name a publisher resolved to a real address ("" for other
// real addresses, which are steered by address).
func (p *parts) nameOf(snap *steering.Snapshot, dst netip.Addr) (name string, known bool) {
	if p.stubs.Contains(dst) {
		name, ok := p.stubs.Lookup(dst)
		if ok {
			p.stubs.Touch(dst, time.Now())
		}
		return name, ok
	}
	if name, ok := p.pub.name(dst); ok {
		p.pub.touch(dst, time.Now().Add(pubAddrLife))
		return name, true
	}
	return "", true
}

// setOwner fills in the identity of the process that owns a flow, for the
// pinned-app exceptions. A flow whose owner cannot be found is decided
// without one (it is steered as its app says).
func (p *parts) setOwner(f *steering.Flow, proto string, local, remote netip.AddrPort) {
	o, err := p.a.cfg.Owners.Lookup(proto, local, remote)
	if err != nil {
		p.log.Debug("flow owner unknown", zap.String("proto", proto), zap.Stringer("local", local), zap.Error(err))
		return
	}
	f.Process, f.Path, f.AppID = o.Process, o.Path, o.AppID
}
