package platform

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"
)

// routeOS is one OS's half of a journalledRouter: it finds devices, reads
// what the OS has, and makes one change at a time. The journal, the claim
// and the plan are the same on every OS and live in journalledRouter.
type routeOS interface {
	// device returns the interface named name (its index and name) and
	// whether it is up.
	device(name string) (dev linkSpec, up bool, err error)
	// present reports whether the device l still exists under the same
	// index and name; what the agent added to it went with it if not.
	present(l linkSpec) (bool, error)
	// read returns what the OS has that want could collide with (see
	// osRouting; which routes count is the OS half's to say).
	read(want routerState) (osRouting, error)
	// apply makes one change. Adding what is there already, or removing
	// what is gone already, succeeds: a change may be repeated after a kill.
	apply(op routerOp) error
}

// compileFunc is the state cfg asks for on dev; broughtUp says the agent
// brings (or brought) the device up.
type compileFunc func(cfg RouterConfig, dev linkSpec, broughtUp bool) routerState

// journalledRouter is a Router over a routeOS (netlink, IP Helper,
// ifconfig/route): every change
// is journalled before it is made, and a new router first removes what the
// journal of a run that did not stop cleanly records, and only that.
type journalledRouter struct {
	sys     routeOS
	compile compileFunc
	log     *zap.Logger
	journal journal
	// apply makes one change (sys.apply); tests replace it to stop
	// part-way, as a kill would.
	apply func(op routerOp) error

	// mu orders the changes. What the agent's changes may have left in the
	// OS (a superset of it) is the journal's content, read when a change is
	// planned rather than kept: with 10,000 apps it is tens of thousands of
	// routes, over a megabyte the agent would hold while idle.
	mu      sync.Mutex
	foreign map[string]bool // someone else's entries already logged
	closed  bool
	closeOS func() // releases what sys holds (a netlink socket), if set
}

func newJournalledRouter(sys routeOS, compile compileFunc, stateDir string, log *zap.Logger) (*journalledRouter, error) {
	if log == nil {
		log = zap.NewNop()
	}
	j, err := newJournal(stateDir, routerJournalName)
	if err != nil {
		return nil, err
	}
	r := &journalledRouter{sys: sys, compile: compile, log: log.Named("router"), journal: j, apply: sys.apply,
		foreign: map[string]bool{}}
	if err := r.repair(); err != nil {
		return nil, err
	}
	return r, nil
}

// repair removes what the journal records, on the devices that are still
// the ones the agent changed.
func (r *journalledRouter) repair() error {
	var left routerState
	found, err := r.journal.read(&left)
	if err != nil || !found {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.moveLocked(routerState{}); err != nil {
		return fmt.Errorf("remove the routing an earlier run left (journal %s): %w", r.journal.path, err)
	}
	r.log.Info("removed the routing an earlier run left", zap.String("journal", r.journal.path))
	return nil
}

// Set implements Router.
func (r *journalledRouter) Set(cfg RouterConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("router closed")
	}
	dev, up, err := r.sys.device(cfg.Interface)
	if err != nil {
		return fmt.Errorf("find interface %s: %w", cfg.Interface, err)
	}
	had, err := r.haveLocked()
	if err != nil {
		return err
	}
	want := r.compile(cfg, dev, !up || had.link(dev).Up)
	sys, err := r.sys.read(want)
	if err != nil {
		return err
	}
	want, foreign := claimRouter(had, want, sys)
	for _, f := range foreign {
		if !r.foreign[f] {
			r.foreign[f] = true
			r.log.Warn("already in the system and not the agent's: left alone", zap.String("entry", f))
		}
	}
	if err := r.moveLocked(want); err != nil {
		return err
	}
	routes := cfg.Routes
	if len(routes) > maxLoggedRoutes {
		routes = routes[:maxLoggedRoutes]
	}
	r.log.Info("routes set", zap.String("dev", dev.Name), zap.Stringers("addrs", cfg.Addrs),
		zap.Int("count", len(cfg.Routes)), zap.Stringers("routes", routes))
	return nil
}

// maxLoggedRoutes is the most routes one log line names: with 10,000 apps
// the agent sets 28,000, a line of 600 kB (and as much garbage) each time.
const maxLoggedRoutes = 32

// Close implements Router: it removes what Set added.
func (r *journalledRouter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.moveLocked(routerState{})
	if r.closeOS != nil {
		r.closeOS()
	}
	return err
}

// haveLocked returns what the journal records: what the agent's changes may
// have left in the OS.
func (r *journalledRouter) haveLocked() (routerState, error) {
	var have routerState
	_, err := r.journal.read(&have)
	return have, err
}

// moveLocked takes the OS from what the journal records to want. The journal first records
// everything in either, then the changes are made; after removals it is
// brought down to want (or goes, when want is empty). A failure or a kill
// part-way leaves the journal holding at least what is in the OS, which the
// next move or the next start's repair takes away. Adding only costs one
// journal write: the union is then want.
func (r *journalledRouter) moveLocked(want routerState) error {
	had, err := r.haveLocked()
	if err != nil {
		return err
	}
	have, err := r.presentLocked(had)
	if err != nil {
		return err
	}
	gone := len(have.Links) != len(had.Links)
	plan := planRouter(have, want)
	if len(plan) > 0 {
		all := unionRouter(have, want)
		if err := r.journal.write(all); err != nil {
			return err
		}
		for _, op := range plan {
			if err := r.apply(op); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
	}
	removed := slices.ContainsFunc(plan, func(op routerOp) bool { return !op.adds() })
	switch {
	case want.empty():
		if err := r.journal.clear(); err != nil {
			return err
		}
	case removed || len(plan) == 0 && gone:
		if err := r.journal.write(want); err != nil {
			return err
		}
	}
	return nil
}

// presentLocked returns s without the devices that are gone or now carry
// another name.
func (r *journalledRouter) presentLocked(s routerState) (routerState, error) {
	var lookupErr error
	out := s.keepLinks(func(l linkSpec) bool {
		ok, err := r.sys.present(l)
		if err != nil {
			lookupErr = errors.Join(lookupErr, fmt.Errorf("find interface %s (#%d): %w", l.Name, l.Index, err))
			return true
		}
		return ok
	})
	return out, lookupErr
}
