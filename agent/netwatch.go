package agent

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform"
)

// The agent's part in short failures: when the network changes (the default
// route moves to another uplink, an address goes away) the L7 tunnel
// reconnects at once, make-before-break, instead of finding the old path dead
// at the next keepalive; so it does after a sleep (or a pause), when the old
// path may have died unseen (a NAT that forgot it): the old connection is
// checked with a PING answered within l7.CheckTimeout, not the keepalive's
// 15 s of silence and 10 s of PING timeout. Either way what else follows the
// network (the OS's resolvers) is read again.

const (
	// wakeTick is how often the wake detector looks at the clocks, and
	// wakeSlack how far they may drift from it before it calls a wake.
	wakeTick  = 2 * time.Second
	wakeSlack = 3 * time.Second
)

// startNetMonitor subscribes to network changes. Without a monitor (an OS
// that has none yet, or a failure) the agent still works: it notices a dead
// path by its keepalives, and a wake by its clocks.
func (p *parts) startNetMonitor() {
	mon, err := p.a.cfg.NewNetMonitor([]string{p.tunName}, p.log)
	switch {
	case errors.Is(err, platform.ErrNetMonitorUnsupported):
		p.log.Info("network changes are noticed by keepalives only", zap.Error(err))
		return
	case err != nil:
		p.log.Warn("network change monitor; changes are noticed by keepalives only", zap.Error(err))
		return
	}
	p.netmon = mon
	p.push("network monitor", mon.Close)
}

// watchNetwork reconnects the tunnel on a network change and after a wake,
// until ctx ends.
func (p *parts) watchNetwork(ctx context.Context) {
	var changes <-chan struct{}
	if p.netmon != nil {
		changes = p.netmon.Changes()
	}
	t := time.NewTicker(wakeTick)
	defer t.Stop()
	w := wakeDetector{period: wakeTick, slack: wakeSlack, last: time.Now()}
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
			p.l7.Reconnect("network changed")
			p.networkChanged()
		case now := <-t.C:
			if gap, woke := w.tick(now); woke {
				p.log.Info("woke up: reconnecting the tunnel", zap.Duration("gap", gap))
				p.l7.Reconnect("woke up after " + gap.Round(time.Second).String())
				p.networkChanged()
			}
		}
	}
}

// networkChanged asks maintain to read the OS's resolvers again.
func (p *parts) networkChanged() {
	select {
	case p.netChanged <- struct{}{}:
	default:
	}
}

// wakeDetector notices that the agent did not run for a while. A machine
// that slept shows it by its wall clock jumping ahead of the monotonic one
// (which stops during suspend on Linux, macOS and Windows); a process that
// was stopped (SIGSTOP, a paused VM) by a tick arriving long after it was
// due. Either way the connections may have died unseen.
type wakeDetector struct {
	period, slack time.Duration
	last          time.Time // the previous tick, with its monotonic reading
}

// tick takes the time of a tick and reports how long the agent was away
// beyond the tick period, and whether that makes a wake.
func (w *wakeDetector) tick(now time.Time) (time.Duration, bool) {
	mono, wall := now.Sub(w.last), now.Round(0).Sub(w.last.Round(0))
	w.last = now
	return w.judge(mono, wall)
}

// judge compares the time since the last tick by the monotonic and the wall
// clock with the tick period.
func (w *wakeDetector) judge(mono, wall time.Duration) (time.Duration, bool) {
	gap := max(mono-w.period, wall-mono)
	return gap, gap > w.slack
}
