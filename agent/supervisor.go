package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll"
)

// run is the agent between Start and Close: the control API, the supervisor
// goroutine and the requests it takes.
type run struct {
	ctx    context.Context // cancelled when Close begins
	cancel context.CancelFunc
	reqs   chan request
	done   chan struct{} // closed when the supervisor has exited
	err    error         // Close's result, set before done is closed
	ctl    *controlServer
}

// reqQueue lets requests queue while the supervisor is busy (a restart
// takes seconds), so that a new enrollment is handed over even by a
// goroutine whose parts are being torn down.
const reqQueue = 16

func newRun() *run {
	ctx, cancel := context.WithCancel(context.Background())
	return &run{ctx: ctx, cancel: cancel, reqs: make(chan request, reqQueue), done: make(chan struct{})}
}

type requestKind int

const (
	reqRestart requestKind = iota // stop the parts and start again; the start decides whom to run as
	reqSuspend                    // the re-authentication grace period is over
	reqAdopt                      // a new enrollment: save it, then restart as it
	reqRenewed                    // a renewed certificate: save it and swap it in
)

// request is what the supervisor takes from its channel.
type request struct {
	kind requestKind
	// gen is the parts generation that asked, 0 for the control API. The
	// supervisor drops a restart, suspension or renewal from parts that have
	// been replaced meanwhile; an adoption is never dropped.
	gen   uint64
	why   string
	adopt *adoption
	renew *renewal
	reply chan error // buffered; nil when nobody waits for the answer
}

func (q request) answer(err error) {
	if q.reply != nil {
		q.reply <- err
	}
}

// adoption is a new enrollment to save and run as.
type adoption struct {
	who      principal
	install  *enroll.Params // new install parameters (ztdiag -e); nil: unchanged
	id       *enroll.Identity
	with     enroll.Params // the settings it was enrolled with, for pending settings
	signedIn time.Time     // when the user signed in (re-authentication); zero otherwise
}

// renewal is a renewed certificate of the identity old.
type renewal struct {
	old, id *enroll.Identity
}

var (
	errStopping = errors.New("the agent is stopping")
	errStale    = errors.New("the agent restarted meanwhile")
)

// submit hands q to the supervisor. It gives up once done is closed (the
// asking parts are being torn down, or the caller gave up), except that a
// request always goes through while the queue has room: a sign-in that
// completes as a restart begins is still saved.
func submit(reqs chan<- request, q request, done <-chan struct{}) bool {
	select {
	case reqs <- q:
		return true
	default:
	}
	select {
	case reqs <- q:
		return true
	case <-done:
		return false
	}
}

// awaitReply waits for the answer to a request, or for ctx to end.
func awaitReply(ctx context.Context, reply <-chan error) error {
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restart backoff after a failed restart.
const (
	minRetry = 5 * time.Second
	maxRetry = 5 * time.Minute
)

// startTimeout bounds a start the agent makes by itself.
const startTimeout = time.Minute

// supervise is the supervisor goroutine. It makes the first start and
// reports it to Start, then takes requests one at a time until Close: it is
// the only goroutine that builds or tears down parts.
func (a *Agent) supervise(startCtx context.Context, r *run, started chan<- error) {
	defer close(r.done)
	ctx, cancel := context.WithCancel(startCtx)
	stop := context.AfterFunc(r.ctx, cancel) // Close aborts the first start
	err := a.firstStart(ctx, r)
	stop()
	cancel()
	started <- err
	if err != nil {
		return
	}
	var retry *time.Timer
	var retryC <-chan time.Time
	backoff := minRetry
	for {
		select {
		case <-r.ctx.Done():
			if retry != nil {
				retry.Stop()
			}
			r.err = a.shutdown(r)
			return
		case q := <-r.reqs:
			a.serve(r, q)
		case <-retryC:
			retryC = nil
			a.restart(r, "retry after a failed restart")
		}
		// A failed restart leaves no parts: try again, backing off.
		switch p, _ := a.current(); {
		case p == nil && retryC == nil:
			retry = time.NewTimer(backoff)
			retryC = retry.C
			backoff = min(2*backoff, maxRetry)
		case p != nil && retryC != nil:
			retry.Stop()
			retryC, backoff = nil, minRetry
		}
	}
}

// firstStart starts the control API, then the parts. On error it undoes
// what it did and the agent is stopped.
func (a *Agent) firstStart(ctx context.Context, r *run) error {
	// The control socket first: it fails fast when another agent is
	// running, before this one touches anything.
	ctl, err := a.startControl(r)
	if err != nil {
		a.finish(r)
		return err
	}
	r.ctl = ctl
	if err := a.startParts(ctx, r); err != nil {
		a.stopControl(r)
		a.finish(r)
		return err
	}
	return nil
}

// startParts builds new parts and puts them in force.
func (a *Agent) startParts(ctx context.Context, r *run) error {
	a.mu.Lock()
	a.gen++
	gen := a.gen
	a.setStateLocked(ctlapi.StateStarting, "")
	a.mu.Unlock()
	p, err := a.bringUp(ctx, r, gen)
	if err != nil {
		a.setState(ctlapi.StateStopped, err.Error())
		return err
	}
	// A restart does not lift an overdue re-authentication: such parts go
	// in force suspended.
	overdue := p.reauthPhase(time.Now()) == ctlapi.ReauthExpired
	if overdue {
		a.suspendParts(p)
	}
	a.mu.Lock()
	a.parts, a.who = p, p.who
	if overdue {
		a.setStateLocked(ctlapi.StateSuspended, suspendedWhy)
	} else {
		a.setStateLocked(ctlapi.StateRunning, "")
	}
	a.mu.Unlock()
	id := p.ident.Load().id
	a.log.Info("agent running", zap.String("tenant", id.Tenant), zap.String("user", id.User),
		zap.String("as", p.who.kind), zap.String("tun", p.tunName), zap.Stringer("dns", p.tunIP))
	returnMemory() // what building the parts left behind (routes, stubs, the config's JSON)
	return nil
}

// stopParts tears down the parts in force, if any.
func (a *Agent) stopParts() error {
	a.mu.Lock()
	p := a.parts
	if p == nil {
		a.mu.Unlock()
		return nil
	}
	a.setStateLocked(ctlapi.StateStopping, "")
	a.mu.Unlock()
	err := p.teardown()
	a.mu.Lock()
	a.parts = nil
	a.setStateLocked(ctlapi.StateStopped, "")
	a.mu.Unlock()
	return err
}

// restart replaces the parts. A failure leaves the agent stopped, with the
// error in its status, for the supervisor to retry.
func (a *Agent) restart(r *run, why string) {
	a.log.Info("restarting", zap.String("why", why))
	if err := a.stopParts(); err != nil {
		a.log.Warn("teardown before a restart", zap.Error(err))
	}
	ctx, cancel := context.WithTimeout(r.ctx, startTimeout)
	defer cancel()
	if err := a.startParts(ctx, r); err != nil && r.ctx.Err() == nil {
		a.log.Error("restart failed; will retry", zap.String("why", why), zap.Error(err))
		a.setState(ctlapi.StateStopped, fmt.Sprintf("restart (%s) failed, retrying: %v", why, err))
	}
}

const suspendedWhy = "re-authentication is overdue: private access is off until the user signs in"

// suspend turns private access off until the user signs in (running →
// suspended).
func (a *Agent) suspend(p *parts) {
	a.suspendParts(p)
	a.setState(ctlapi.StateSuspended, suspendedWhy)
}

// suspendParts closes the L7 tunnel of p, so that steered flows are refused
// and private names follow the fail mode, as when the PoP is unreachable.
func (a *Agent) suspendParts(p *parts) {
	a.log.Warn("re-authentication grace period over: private access is suspended until the user signs in",
		zap.Time("last_sign_in", p.lastSignIn()))
	p.l7.Close()
}

// serve carries out one request.
func (a *Agent) serve(r *run, q request) {
	p, state := a.current()
	stale := q.gen != 0 && (p == nil || p.gen != q.gen)
	switch q.kind {
	case reqRestart:
		if stale {
			q.answer(errStale)
			return
		}
		q.answer(nil)
		a.restart(r, q.why)
	case reqSuspend:
		if stale || state != ctlapi.StateRunning {
			q.answer(errStale)
			return
		}
		a.suspend(p)
		q.answer(nil)
	case reqRenewed:
		if stale || p.ident.Load().id != q.renew.old {
			q.answer(errStale)
			return
		}
		q.answer(p.adoptRenewed(q.renew.id))
	case reqAdopt:
		err := a.persist(q.adopt)
		q.answer(err)
		if err != nil {
			a.log.Error("new enrollment not saved; the current one stays", zap.Error(err))
			return
		}
		// An enrollment of another principal (a sign-in that completed
		// after a login switched identity) waits on disk for its turn.
		if p == nil || p.who == q.adopt.who {
			a.restart(r, q.why)
		}
	}
}

// serveStopped answers a request that arrives once the parts are down: a
// new enrollment is still saved, for the next start; the rest is moot.
func (a *Agent) serveStopped(q request) {
	if q.kind == reqAdopt {
		err := a.persist(q.adopt)
		if err != nil {
			a.log.Error("new enrollment not saved", zap.Error(err))
		}
		q.answer(err)
		return
	}
	q.answer(errStopping)
}

// persist saves a new enrollment so that the next start runs as it: the
// identity, the settings it was made with, the sign-in time, the install
// parameters; the cached config of the old enrollment goes. Only the
// supervisor writes identities, so nothing races it.
func (a *Agent) persist(ad *adoption) error {
	dir := ad.who.dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if err := ad.id.Save(dir); err != nil {
		return fmt.Errorf("save the new identity (the old one stays): %w", err)
	}
	if err := os.Remove(filepath.Join(dir, configFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("remove the old enrollment's cached config", zap.Error(err))
	}
	if err := saveEnrolledWith(dir, ad.with); err != nil {
		a.log.Warn("record the enrollment's settings", zap.Error(err))
	}
	if !ad.signedIn.IsZero() {
		if err := saveAuth(dir, ad.signedIn); err != nil {
			a.log.Warn("save last sign-in time", zap.Error(err))
		}
	}
	if ad.install != nil {
		if err := enroll.SaveParams(a.cfg.StateDir, *ad.install); err != nil {
			return fmt.Errorf("the new identity is saved, but the install parameters are not: %w", err)
		}
		a.settings.setInstall(*ad.install)
	}
	a.log.Info("new enrollment saved", zap.String("tenant", ad.id.Tenant), zap.String("user", ad.id.User),
		zap.String("device", ad.id.DeviceID), zap.String("as", ad.who.kind))
	return nil
}

// shutdown is Close's work on the supervisor: the parts, then the control
// API.
func (a *Agent) shutdown(r *run) error {
	a.steering.stop() // no override code's expiry applies to parts going away
	err := a.stopParts()
	a.stopControl(r)
	a.capture.stopCapture() // errNoCapture when none runs
	a.uplink.stopCapture()
	a.finish(r)
	a.log.Info("agent stopped")
	return err
}

// stopControl stops the control API and waits for its handlers, serving
// the requests they send meanwhile (a re-enrollment that completed as Close
// began is saved and answered), then drains what is left in the queue.
func (a *Agent) stopControl(r *run) {
	done := r.ctl.shutdown()
	for {
		select {
		case q := <-r.reqs:
			a.serveStopped(q)
		case <-done:
			for {
				select {
				case q := <-r.reqs:
					a.serveStopped(q)
				default:
					return
				}
			}
		}
	}
}

// finish marks the run over: Start may begin another.
func (a *Agent) finish(r *run) {
	a.mu.Lock()
	if a.run == r {
		a.run = nil
	}
	a.parts = nil
	a.setStateLocked(ctlapi.StateStopped, "")
	a.mu.Unlock()
}
