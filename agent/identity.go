package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
)

// identity is the device identity and the config client that uses it; both
// are replaced together when the certificate is renewed.
type identity struct {
	id *enroll.Identity
	cc *enroll.ConfigClient
}

// settingsState is the effective install settings: MDM over install
// parameters over defaults.
type settingsState struct {
	mu       sync.Mutex
	params   enroll.Params
	settings []enroll.Setting
}

func (a *Agent) settings() []enroll.Setting {
	a.eff.mu.Lock()
	defer a.eff.mu.Unlock()
	return a.eff.settings
}

func (a *Agent) params() enroll.Params {
	a.eff.mu.Lock()
	defer a.eff.mu.Unlock()
	return a.eff.params
}

// refreshSettings re-reads the MDM source and merges it over the install
// parameters. An invalid MDM source or value is reported (path, key, reason)
// and the last good settings stay in force. It reports whether they changed.
func (a *Agent) refreshSettings() bool {
	mdm, changed, err := a.mdm.Poll()
	path := a.mdm.Source().Path()
	if err != nil {
		a.log.Error("MDM configuration is invalid; the last good settings stay in force", zap.String("path", path), zap.Error(err))
	}
	a.eff.mu.Lock()
	defer a.eff.mu.Unlock()
	if !changed && a.eff.settings != nil {
		return false
	}
	p, settings, err := enroll.MergeParams(a.cfg.Params, mdm, path)
	if err != nil {
		a.log.Error("MDM setting is invalid; the last good settings stay in force", zap.String("path", path), zap.Error(err))
		if a.eff.settings != nil {
			return false
		}
		p, settings, _ = enroll.MergeParams(a.cfg.Params, nil, path)
	}
	a.eff.params, a.eff.settings = p, settings
	if changed && len(mdm) > 0 {
		a.log.Info("MDM settings applied", zap.String("path", path), zap.Int("keys", len(mdm)))
	}
	return true
}

// loadOrEnroll loads the device identity, enrolling first when there is none
// (by invitation, IdP sign-in or UPN, as the settings say).
func (a *Agent) loadOrEnroll(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	a.refreshSettings()
	who := a.wantPrincipal()
	a.who.Store(&who)
	dir := who.dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	id, err := enroll.LoadIdentity(dir)
	switch {
	case err == nil:
		a.loadAuth(false)
		if id.Recovered != "" {
			a.log.Warn("device identity recovered", zap.String("why", id.Recovered))
		}
		a.log.Info("enrolled", zap.String("tenant", id.Tenant), zap.String("user", id.User), zap.String("device", id.DeviceID))
	case errors.Is(err, enroll.ErrNotEnrolled), errors.Is(err, enroll.ErrCorruptIdentity):
		if err != nil && !errors.Is(err, enroll.ErrNotEnrolled) {
			a.log.Warn("device identity unusable, enrolling again", zap.Error(err))
		}
		if id, err = a.enrollAs(ctx, who, a.params()); err != nil {
			return err
		}
		if err := id.Save(dir); err != nil {
			return fmt.Errorf("save device identity: %w", err)
		}
		a.loadAuth(true)
		a.log.Info("enrollment complete", zap.String("tenant", id.Tenant), zap.String("user", id.User), zap.String("device", id.DeviceID))
	default:
		return err
	}
	return a.setIdentity(id)
}

func (a *Agent) setIdentity(id *enroll.Identity) error {
	cc, err := enroll.NewConfigClient(id, a.log)
	if err != nil {
		return err
	}
	a.ident.Store(&identity{id: id, cc: cc})
	return nil
}

// maintain runs the periodic chores that are not config polls: MDM changes
// and certificate renewal.
func (a *Agent) maintain(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.refreshSettings()
			a.refreshUpstreams()
			a.reauthTick(now)
			a.sweepBypassCache(now)
			if a.ident.Load().id.NeedsRenewal(now) {
				if err := a.renew(ctx); err != nil {
					a.log.Warn("certificate renewal failed; will retry", zap.Error(err))
				}
			}
		}
	}
}

// refreshUpstreams follows the OS's own resolvers as the network changes
// (a new Wi-Fi, DHCP renewals, a VPN coming up), so forwarded names keep
// going where they would go without the agent.
func (a *Agent) refreshUpstreams() {
	ups, err := a.dnsCfg.Upstreams()
	if err != nil {
		a.log.Warn("read the system's DNS servers", zap.Error(err))
		return
	}
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if slices.Equal(ups, a.upstreams) || len(ups) == 0 {
		return
	}
	a.dns.SetUpstreams(ups)
	a.log.Info("upstream resolvers changed", zap.Stringers("from", a.upstreams), zap.Stringers("to", ups))
	a.upstreams = ups
}

// renew replaces the device certificate before it expires, without user
// action. The tunnel picks the new certificate up at its next connection.
func (a *Agent) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	id, err := enroll.Renew(ctx, a.ident.Load().id, a.log)
	if err != nil {
		return err
	}
	if err := id.Save(a.whom().dir); err != nil {
		return fmt.Errorf("save renewed identity: %w", err)
	}
	a.log.Info("device certificate renewed", zap.Time("expires", id.Expires()))
	return a.setIdentity(id)
}
