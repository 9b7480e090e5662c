package agent

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// Publisher selection: at start, every client.probe_interval (default 5m) and
// at once when the selection goes stale, the agent measures the RTT through
// the PoP to every publisher of its L7 apps (the publishers each app lists in
// the config), keeps per app those in the lowest non-empty RTT bucket
// (steering.SelectPublishers) and sends that selection to the PoP, which then
// uses the first online one of them for this device's flows and DNS queries
// of the app. The selection is stale when the PoP says a selected publisher
// went offline, when the connection to the PoP changes, when a flow or a DNS
// query is refused because no publisher is online, or when the config changes.

const (
	// probeSamples probes are sent to each publisher in a round, one after
	// the other; its RTT is their minimum, the figure least disturbed by
	// queueing and scheduling.
	probeSamples = 3
	// probeWait bounds one probe; the PoP itself gives up on a publisher
	// after l7.ProbeTimeout.
	probeWait = l7.ProbeTimeout + time.Second
	// probeParallel bounds the publishers probed at once.
	probeParallel = 8
	// reprobeGap is the least time between the starts of two rounds, so a
	// flapping publisher or a burst of refusals cannot make the agent probe
	// in a loop.
	reprobeGap = time.Second
	// syncRetry bounds the wait after the PoP refused a selection.
	syncRetry = 30 * time.Second
)

// selector is the state of publisher selection: the stale signal and the
// last round's results.
type selector struct {
	stale    chan struct{} // cap 1: measure again at once
	last     atomic.Pointer[selectionRound]
	failures atomic.Int64 // probes that failed (garbage, no answer, refused but for "not online")
}

// selectionRound is one round's outcome, read-only once stored.
type selectionRound struct {
	at time.Time
	// byPubs holds the publishers' status by the apps' publisher lists
	// (pubsKey): apps with the same publishers share one, and a tenant of
	// 10,000 apps usually has a handful of lists, so the round is not a map
	// of 10,000 apps kept for the agent's life (~2.6 MB).
	byPubs map[string][]ctlapi.PublisherStatus
}

// pubsKey is the key of an app's publisher list.
func pubsKey(a *steering.App) string { return strings.Join(a.Publishers, "\x00") }

// markStale asks for a new round; cheap, and safe from any goroutine.
func (s *selector) markStale() {
	select {
	case s.stale <- struct{}{}:
	default:
	}
}

// staleOnRefusal marks the selection stale when err says no publisher of an
// app is online.
func (s *selector) staleOnRefusal(err error) {
	var re *l7.RefusedError
	if errors.As(err, &re) && re.Status == http.StatusServiceUnavailable {
		s.markStale()
	}
}

// selectLoop owns publisher selection for the life of the parts.
func (p *parts) selectLoop(ctx context.Context) {
	var last time.Time
	for {
		if p.l7.WaitConnected(ctx) != nil {
			return
		}
		if d := reprobeGap - time.Since(last); d > 0 && !l7.SleepCtx(ctx.Done(), d) {
			return
		}
		last = time.Now()
		// A stale mark from before this round is answered by it.
		select {
		case <-p.sel.stale:
		default:
		}
		sel, watch := p.probeRound(ctx)
		sctx, cancel := context.WithTimeout(ctx, probeWait)
		ss, err := p.l7.SyncSelection(sctx, sel, watch)
		cancel()
		var staleC <-chan struct{}
		wait := p.probeInterval()
		switch {
		case errors.Is(err, l7.ErrNotConnected):
			continue // measure again through the next connection
		case err != nil:
			p.log.Warn("send publisher selection to the PoP", zap.Error(err))
			wait = min(wait, syncRetry)
		default:
			staleC = ss.Stale()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-staleC:
			p.log.Info("publisher selection stale", zap.String("reason", ss.Reason()))
		case <-p.sel.stale:
		case <-timer.C:
		}
		timer.Stop()
		if ss != nil {
			ss.Close()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (p *parts) probeInterval() time.Duration {
	if d := p.snap.Load().Client().ProbeInterval.D(); d > 0 {
		return d
	}
	return steering.DefaultProbeInterval
}

// probeRound measures every publisher of the L7 apps once (each through the
// first app that lists it and that the PoP lets this device use: it lets a
// device probe only publishers of apps the policy allows it), records the
// round for status and returns the selection and the publishers that were not
// online (for the PoP to watch: their arrival makes the selection stale).
func (p *parts) probeRound(ctx context.Context) (l7.Selection, []string) {
	apps := selectableApps(p.snap.Load())
	via := map[string][]string{} // publisher → the apps it may be probed through, in config order
	for a := range apps {
		for _, pub := range a.Publishers {
			via[pub] = append(via[pub], a.ID)
		}
	}
	rtts := p.probeAll(ctx, via)
	round := &selectionRound{at: time.Now(), byPubs: map[string][]ctlapi.PublisherStatus{}}
	sel := l7.Selection{}
	// Apps with the same publishers (often all of a tenant's) share one
	// choice and one status: the choice depends on the publishers alone, and
	// 10,000 apps need not hold 10,000 copies (~3 MB). Both are only read.
	chosen := map[string][]string{}
	for a := range apps {
		key := pubsKey(&a)
		c, ok := chosen[key]
		if !ok {
			in := make([]steering.PublisherRTT, 0, len(a.Publishers))
			for _, pub := range a.Publishers {
				in = append(in, rtts[pub].PublisherRTT)
			}
			c = steering.SelectPublishers(in)
			chosen[key] = c
			round.byPubs[key] = publisherStatuses(rtts, a.Publishers, c)
		}
		if len(c) > 0 {
			sel[a.ID] = c
		}
	}
	var watch []string
	for pub, r := range rtts {
		if r.offline {
			watch = append(watch, pub)
		}
	}
	slices.Sort(watch)
	p.sel.last.Store(round)
	p.log.Debug("publisher selection", zap.Any("selection", sel), zap.Strings("offline", watch))
	return sel, watch
}

// selectableApps walks the apps of snap whose flows go through the L7 tunnel
// and that name publishers, without their hosts (Snapshot.AppsWithoutHosts):
// a round every few minutes, which walks them twice, allocates nothing for
// 10,000 apps.
func selectableApps(snap *steering.Snapshot) iter.Seq[steering.App] {
	return func(yield func(steering.App) bool) {
		for _, a := range snap.AppsWithoutHosts() {
			if a.Tunnel != steering.TunnelL3E && len(a.Publishers) > 0 && !yield(a) {
				return
			}
		}
	}
}

// probeResult is one publisher's measurement in a round.
type probeResult struct {
	steering.PublisherRTT
	err     string
	offline bool // the PoP said it is not online (rather than failing it)
}

// probeAll probes each publisher of via (publisher → apps), probeParallel at
// a time.
func (p *parts) probeAll(ctx context.Context, via map[string][]string) map[string]probeResult {
	var mu sync.Mutex
	out := make(map[string]probeResult, len(via))
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for pub, apps := range via {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := p.probePublisher(ctx, apps, pub)
			mu.Lock()
			out[pub] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// probePublisher takes probeSamples samples of pub's RTT and keeps the least,
// through the first of apps the policy lets this device use (a 403 tries the
// next). The first other failure ends the round for pub: it is unreachable
// until the next.
func (p *parts) probePublisher(ctx context.Context, apps []string, pub string) probeResult {
	r := probeResult{PublisherRTT: steering.PublisherRTT{Publisher: pub}}
	for n := 0; n < probeSamples; {
		pctx, cancel := context.WithTimeout(ctx, probeWait)
		rtt, err := p.l7.Probe(pctx, apps[0], pub)
		cancel()
		var re *l7.RefusedError
		switch {
		case err != nil && errors.As(err, &re) && re.Status == http.StatusForbidden && len(apps) > 1:
			apps = apps[1:]
		case err != nil:
			if ctx.Err() == nil {
				p.probeFailed(&r, apps[0], err)
			}
			return r
		default:
			if n == 0 || rtt < r.RTT {
				r.RTT = rtt
			}
			r.Reachable = true
			n++
		}
	}
	return r
}

// probeFailed marks r unreachable for the round; unless the PoP said the
// publisher is not online (which it then watches for), the failure is counted
// and logged.
func (p *parts) probeFailed(r *probeResult, app string, err error) {
	var re *l7.RefusedError
	r.offline = errors.As(err, &re) && re.Status == http.StatusServiceUnavailable
	r.Reachable, r.err = false, err.Error()
	if r.offline {
		p.log.Debug("publisher not online", zap.String("publisher", r.Publisher), zap.String("app", app))
		return
	}
	p.sel.failures.Add(1)
	// One line per minute whatever the publisher (the binaries' logger holds
	// repeats back); the count is in status.
	p.log.Warn("publisher probe failed: unreachable until the next round",
		zap.String("publisher", r.Publisher), zap.String("app", app), zap.Error(err))
}

func publisherStatuses(rtts map[string]probeResult, pubs, chosen []string) []ctlapi.PublisherStatus {
	out := make([]ctlapi.PublisherStatus, 0, len(pubs))
	for _, pub := range pubs {
		r := rtts[pub]
		st := ctlapi.PublisherStatus{Name: pub, Selected: slices.Contains(chosen, pub), Error: r.err}
		if r.Reachable {
			st.RTT = r.RTT
			st.Bucket = steering.BucketName(steering.Bucket(r.RTT))
		}
		out = append(out, st)
	}
	return out
}

// selectionStatus is the last round, for ztdiag.
func (p *parts) selectionStatus() (ctlapi.SelectionStatus, map[string][]ctlapi.PublisherStatus) {
	st := ctlapi.SelectionStatus{Interval: p.probeInterval().String(), ProbeFailures: p.sel.failures.Load()}
	r := p.sel.last.Load()
	if r == nil {
		return st, nil
	}
	st.Probed = r.at
	snap := p.snap.Load()
	out := make(map[string][]ctlapi.PublisherStatus, snap.NumApps())
	for a := range selectableApps(snap) {
		if ps, ok := r.byPubs[pubsKey(&a)]; ok {
			out[a.ID] = ps
		}
	}
	return st, out
}
