package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
)

// identity is the device identity and the config source that uses it; both
// are replaced together when the certificate is renewed.
type identity struct {
	id *enroll.Identity
	cs ConfigSource
}

// loadOrEnroll decides whom to run as and loads that principal's identity,
// enrolling first when there is none (by invitation, IdP sign-in or UPN, as
// the settings say).
func (p *parts) loadOrEnroll(ctx context.Context) error {
	a := p.a
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	a.refreshSettings()
	p.who = a.wantPrincipal(a.lastPrincipal())
	dir := p.who.dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	with := p.who.enrollParams(a.params())
	id, err := enroll.LoadIdentity(dir)
	switch {
	case err == nil:
		p.loadAuth(false)
		if id.Recovered != "" {
			p.log.Warn("device identity recovered", zap.String("why", id.Recovered))
		}
		p.enrolledWith = loadEnrolledWith(dir, with, p.log)
		p.log.Info("enrolled", zap.String("tenant", id.Tenant), zap.String("user", id.User), zap.String("device", id.DeviceID))
	case errors.Is(err, enroll.ErrNotEnrolled), errors.Is(err, enroll.ErrCorruptIdentity):
		if !errors.Is(err, enroll.ErrNotEnrolled) {
			p.log.Warn("device identity unusable, enrolling again", zap.Error(err))
		}
		if id, err = a.enrollAs(ctx, p.who, with); err != nil {
			return err
		}
		if err := id.Save(dir); err != nil {
			return fmt.Errorf("save device identity: %w", err)
		}
		if err := saveEnrolledWith(dir, with); err != nil {
			p.log.Warn("record the enrollment's settings", zap.Error(err))
		}
		p.enrolledWith = fingerprints(with)
		p.loadAuth(true)
		p.log.Info("enrollment complete", zap.String("tenant", id.Tenant), zap.String("user", id.User), zap.String("device", id.DeviceID))
	default:
		return err
	}
	if err := p.setIdentity(id); err != nil {
		return err
	}
	p.push("config client", func() error { p.ident.Load().cs.Close(); return nil })
	return nil
}

// setIdentity puts id and a config source for it in force, closing the
// previous source.
func (p *parts) setIdentity(id *enroll.Identity) error {
	cs, err := p.a.cfg.NewConfigSource(id, p.log)
	if err != nil {
		return err
	}
	if old := p.ident.Swap(&identity{id: id, cs: cs}); old != nil {
		old.cs.Close()
	}
	return nil
}

// maintain runs the periodic chores that are not config polls: MDM changes,
// the OS's resolvers, re-authentication and certificate renewal. It acts on
// re-authentication at once, so that a start finds an overdue sign-in.
func (p *parts) maintain(ctx context.Context) {
	p.reauthTick(time.Now())
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	// The trim looks more often than the other chores: a burst's garbage
	// (a publisher selection round, a config, a status of 10,000 apps)
	// would otherwise stay resident up to 30 s. A look that finds nothing
	// to return costs a read of the runtime's counters, no collection.
	trim := time.NewTicker(trimEvery)
	defer trim.Stop()
	for {
		select {
		case <-trim.C:
			trimMemory()
		case <-ctx.Done():
			return
		case <-p.netChanged:
			p.refreshUpstreams()
			p.onprem.recheck() // with the resolvers of the new network
			p.captive.recheck()
			p.recheckStubRange()
		case now := <-t.C:
			p.a.refreshSettings()
			p.refreshUpstreams()
			p.reauthTick(now)
			p.sweepBypassCache(now)
			if p.ident.Load().id.NeedsRenewal(now) {
				if err := p.renew(ctx); err != nil {
					p.log.Warn("certificate renewal failed; will retry", zap.Error(err))
				}
			}
		}
	}
}

// refreshUpstreams follows the OS's own resolvers as the network changes
// (a new Wi-Fi, DHCP renewals, a VPN coming up), so forwarded names keep
// going where they would go without the agent. Only maintain writes them.
func (p *parts) refreshUpstreams() {
	ups, err := p.dnsCfg.Upstreams()
	if err != nil {
		p.log.Warn("read the system's DNS servers", zap.Error(err))
		return
	}
	cur := *p.upstreams.Load()
	if slices.Equal(ups, cur) || len(ups) == 0 {
		return
	}
	noteUpstreams(ups)
	p.dns.SetUpstreams(ups)
	p.log.Info("upstream resolvers changed", zap.Stringers("from", cur), zap.Stringers("to", ups))
	p.upstreams.Store(&ups)
}

// renew replaces the device certificate before it expires, without user
// action: the tenant is asked here, and the supervisor saves the result and
// swaps it in (unless the agent restarted meanwhile). The tunnel picks the new
// certificate up at its next connection.
func (p *parts) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	old := p.ident.Load().id
	id, err := p.a.cfg.Enroller.Renew(ctx, old)
	if err != nil {
		return err
	}
	reply := make(chan error, 1)
	if !submit(p.reqs, request{kind: reqRenewed, gen: p.gen, renew: &renewal{old: old, id: id}, reply: reply}, ctx.Done()) {
		return ctx.Err()
	}
	return awaitReply(ctx, reply)
}

// adoptRenewed saves a renewed certificate and puts it in force; the
// supervisor calls it.
func (p *parts) adoptRenewed(id *enroll.Identity) error {
	if err := id.Save(p.who.dir); err != nil {
		return fmt.Errorf("save renewed identity: %w", err)
	}
	p.log.Info("device certificate renewed", zap.Time("expires", id.Expires()))
	return p.setIdentity(id)
}
