package agent

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
)

// On-premises detection (client.onprem_detection). On the corporate network
// private-app steering stands aside: private names resolve through the OS's
// own resolvers (the corporate DNS), the routes of app prefixes leave the TUN
// device, and flows go direct; off premises the agent steers again. The
// check runs at start, after every network change (once the OS's resolvers
// have been read again), when the config changes, and every
// onprem_detection.interval. Stub addresses handed out before the agent came
// on premises stay routed to it and keep being carried until their names
// expire, so no open flow breaks at the switch.

// location is the outcome of one on-premises check.
type location struct {
	onPrem  bool
	reason  string // what the check found; "" when detection is off
	checked time.Time
}

// onPremProbe runs one check of o and says whether it found the corporate
// network, and why. It must return within a few seconds (probeTimeout).
type onPremProbe func(ctx context.Context, o *steering.OnPremDetection) (onPrem bool, reason string)

// onPremDetector holds the last outcome; only run calls check, the
// data path reads onPrem without a lock.
type onPremDetector struct {
	probe onPremProbe
	log   *zap.Logger
	loc   atomic.Pointer[location]
	// changed is called, on run's goroutine, after the outcome
	// flipped.
	changed func(onPrem bool)
	kick    chan struct{}
}

func newOnPremDetector(probe onPremProbe, log *zap.Logger, changed func(bool)) *onPremDetector {
	d := &onPremDetector{probe: probe, log: log, changed: changed, kick: make(chan struct{}, 1)}
	d.loc.Store(&location{})
	return d
}

// onPrem reports whether the last check found the corporate network.
func (d *onPremDetector) onPrem() bool { return d.loc.Load().onPrem }

// recheck asks run for a check now; requests coalesce.
func (d *onPremDetector) recheck() {
	poke(d.kick)
}

// poke sends on a channel of one slot unless a value waits there already.
func poke(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// check runs the probe of o (detection off when o is nil), records the
// outcome and reports a flip.
func (d *onPremDetector) check(ctx context.Context, o *steering.OnPremDetection, now time.Time) {
	next := location{checked: now}
	if o != nil {
		next.onPrem, next.reason = d.probe(ctx, o)
	}
	if ctx.Err() != nil {
		return // torn down mid-check: the outcome means nothing
	}
	prev := d.loc.Swap(&next)
	if prev.onPrem == next.onPrem {
		return
	}
	if next.onPrem {
		d.log.Info("on premises: private-app steering stands aside", zap.String("reason", next.reason))
	} else {
		d.log.Info("off premises: steering private apps", zap.String("reason", next.reason))
	}
	d.changed(next.onPrem)
}

// interval is how long to wait for the next periodic check of o; without
// detection only a recheck (a config change) ends the wait.
func onPremInterval(o *steering.OnPremDetection) time.Duration {
	if o == nil {
		return 24 * time.Hour
	}
	if iv := o.Interval.D(); iv > 0 {
		return iv
	}
	return steering.DefaultOnPremInterval
}

// run checks at once, then on every recheck and every interval, until ctx
// ends. cfg returns the detection config in force.
func (d *onPremDetector) run(ctx context.Context, cfg func() *steering.OnPremDetection) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
			t.Stop()
		case <-t.C:
		}
		o := cfg()
		d.check(ctx, o, time.Now())
		t.Reset(onPremInterval(o))
	}
}

func (d *onPremDetector) status() ctlapi.NetworkStatus {
	l := d.loc.Load()
	return ctlapi.NetworkStatus{OnPrem: l.onPrem, OnPremReason: l.reason, OnPremChecked: l.checked}
}

// onPremConfig is the detection config of the snapshot in force.
func (p *parts) onPremConfig() *steering.OnPremDetection {
	return p.snap.Load().Client().OnPremDetection
}

// onPremChanged moves the routes of app prefixes out of the TUN device on
// premises and back off premises. DNS needs nothing: the policy asks onPrem
// for every query.
func (p *parts) onPremChanged(bool) {
	p.updateRoutes()
}
