package agent

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
)

// Captive portals. Behind a hotel's or an airport's portal every name
// resolves to the portal and every web request is redirected to its login
// page until the user signs in there; the PoP is out of reach meanwhile. While
// the tunnel is down the agent asks client.captive_check (an http URL that
// answers 204 No Content on an open network), on a socket that bypasses its
// routes and without following redirects. Any other answer is a portal: it is
// shown in status; the tunnel then tries the PoP only now and then (5 s, then
// doubling up to a minute) instead of every half second, as it does for an
// address refused at once; the check is repeated every captivePoll, and when
// it passes again the tunnel reconnects at once. The portal's DNS is left
// alone: public names are forwarded to the OS's resolvers (the portal's) as
// ever, so the user's browser reaches the login page.

const (
	// captivePoll is how often the check runs while there is a portal (so
	// the tunnel is up within seconds of the portal opening), and the first
	// interval while the tunnel is down without one.
	captivePoll = 3 * time.Second
	// captiveIdleMax bounds the interval between checks while the tunnel is
	// down without a portal (offline, or the PoP down): a network change
	// checks at once anyway.
	captiveIdleMax = time.Minute
	// Bounds of the wait between the tunnel's attempts behind a portal.
	captiveDialMin = 5 * time.Second
	captiveDialMax = time.Minute
)

// errCaptive refuses a dial of the PoP behind a captive portal between the
// attempts let through.
var errCaptive = errors.New("behind a captive portal: waiting for the portal to open")

// captivePortalProbe checks url and says whether a portal answered, and why.
type captivePortalProbe func(ctx context.Context, url string) (captive bool, reason string)

type captiveState struct {
	captive bool
	reason  string
	checked time.Time
}

// captiveDetector holds the last verdict; only run calls check, the data
// path reads it without a lock.
type captiveDetector struct {
	probe captivePortalProbe
	log   *zap.Logger
	state atomic.Pointer[captiveState]
	// opened is called, on run's goroutine, when a portal let the machine
	// through.
	opened func()
	kick   chan struct{}
	gate   struct {
		sync.Mutex
		next time.Time     // no attempt before
		hold time.Duration // the last wait; 0 when not captive
	}
}

func newCaptiveDetector(probe captivePortalProbe, log *zap.Logger, opened func()) *captiveDetector {
	d := &captiveDetector{probe: probe, log: log, opened: opened, kick: make(chan struct{}, 1)}
	d.state.Store(&captiveState{})
	return d
}

func (d *captiveDetector) captive() bool { return d.state.Load().captive }

// recheck asks run for a check now (a network change); requests coalesce.
func (d *captiveDetector) recheck() {
	poke(d.kick)
}

// set records a verdict and acts on a change.
func (d *captiveDetector) set(next captiveState) {
	prev := d.state.Swap(&next)
	switch {
	case next.captive && !prev.captive:
		d.gate.Lock()
		d.gate.hold, d.gate.next = captiveDialMin, next.checked.Add(captiveDialMin)
		d.gate.Unlock()
		d.log.Warn("captive portal: sign in to it in a browser; the tunnel waits", zap.String("reason", next.reason))
	case prev.captive && !next.captive:
		d.gate.Lock()
		d.gate.hold, d.gate.next = 0, time.Time{}
		d.gate.Unlock()
		d.log.Info("captive portal gone: connecting", zap.String("reason", next.reason))
		d.opened()
	}
}

// check runs the probe and records its verdict, unless ctx ended meanwhile.
func (d *captiveDetector) check(ctx context.Context, url string, now time.Time) {
	captive, reason := d.probe(ctx, url)
	if ctx.Err() != nil {
		return
	}
	d.set(captiveState{captive: captive, reason: reason, checked: now})
}

// allowDial lets a dial of the PoP through, or refuses it with errCaptive
// while behind a portal, except every hold (doubling up to captiveDialMax):
// a wrong verdict (a proxy answering the check) delays the tunnel by at
// most that.
func (d *captiveDetector) allowDial(now time.Time) error {
	if !d.captive() {
		return nil
	}
	d.gate.Lock()
	defer d.gate.Unlock()
	if now.Before(d.gate.next) {
		return errCaptive
	}
	d.gate.hold = min(max(2*d.gate.hold, captiveDialMin), captiveDialMax)
	d.gate.next = now.Add(d.gate.hold)
	return nil
}

// run checks while the tunnel is down, or a portal stands in its way, until
// ctx ends: every captivePoll behind a portal, else at once and then less
// and less often (up to captiveIdleMax); a recheck (a network change) checks
// at once. url returns the check in force, tunnelUp whether the tunnel is
// connected.
func (d *captiveDetector) run(ctx context.Context, url func() string, tunnelUp func() bool) {
	t := time.NewTimer(0)
	defer t.Stop()
	idle := captivePoll
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
			t.Stop()
			idle = captivePoll
		case <-t.C:
		}
		wait := captivePoll
		switch u := url(); {
		case u == steering.CaptiveCheckOff:
			d.set(captiveState{})
		case tunnelUp():
			// The PoP is reachable: no portal in the way.
			if d.captive() {
				d.set(captiveState{reason: "the tunnel is up", checked: time.Now()})
			}
			idle = captivePoll
		case d.captive():
			d.check(ctx, u, time.Now())
		default:
			d.check(ctx, u, time.Now())
			wait, idle = idle, min(2*idle, captiveIdleMax)
		}
		t.Reset(wait)
	}
}

// status fills in the captive portal's part of the network status.
func (d *captiveDetector) status(n *ctlapi.NetworkStatus) {
	s := d.state.Load()
	n.Captive, n.CaptiveReason = s.captive, s.reason
}

// captiveURL is the check of the snapshot in force.
func (p *parts) captiveURL() string {
	return p.snap.Load().Client().CaptiveCheck
}

// dialPoP dials the PoP on a socket that bypasses the agent's routes, but
// behind a captive portal only now and then.
func (p *parts) dialPoP(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := p.captive.allowDial(time.Now()); err != nil {
		return nil, err
	}
	return platform.DialBypass(ctx, network, addr)
}
