package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
	"github.com/ztagent/ztagent/steering"
)

// syncState is the config in force and where it came from.
type syncState struct {
	// cfg is the config without its steering part (see withoutSteering);
	// the snapshot in force holds that.
	cfg     *tenantapi.AgentConfig
	etag    string
	source  string // sourceTenant, sourceCache or sourceNone
	fetched time.Time
}

// Where the config in force came from (ConfigStatus.Source).
const (
	sourceTenant = "tenant"
	sourceCache  = "cache"
	// sourceNone: neither the tenant nor the cache gave a config this agent
	// accepts (one written for another version, with settings it does not
	// support), so it steers nothing until the tenant sends one.
	sourceNone = "none"
)

// cachedConfig is the last good config on disk, so the agent starts and steers
// with the tenant unreachable.
type cachedConfig struct {
	// DeviceID is the enrollment the config was fetched for; "" in caches
	// written before it was recorded.
	DeviceID string                 `json:"device_id,omitempty"`
	ETag     string                 `json:"etag"`
	Fetched  time.Time              `json:"fetched"`
	Config   *tenantapi.AgentConfig `json:"config"`
}

const configFile = "config.json"

// initialConfig fetches the config, or falls back to the last good copy. A
// config this agent refuses — from the tenant, or cached by an earlier version
// with settings this one does not support — does not keep it from starting:
// it is logged, the cache is tried next, and failing that the agent starts
// steering nothing (see steerNothing) while the sync loop asks the tenant for
// a config it accepts. Only a tenant out of reach with no cache at all is an
// error.
func (p *parts) initialConfig(ctx context.Context) (*steering.Snapshot, error) {
	cfg, etag, err := p.ident.Load().id.InitialConfig, "", error(nil)
	if cfg == nil {
		// Not a fresh enrollment (whose response carries the first config).
		cfg, etag, err = p.ident.Load().cs.Fetch(ctx, "")
	}
	var refused *tenantapi.AgentConfig
	if err == nil {
		snap, cerr := steering.Compile(&cfg.Steering)
		if cerr == nil {
			p.saveConfig(cfg, etag)
			p.synced.Store(&syncState{cfg: withoutSteering(cfg), etag: etag, source: sourceTenant, fetched: time.Now()})
			p.forgetInitialConfig()
			returnMemory()
			return snap, nil
		}
		p.log.Error("the tenant sent a config this agent refuses; trying the cached one", zap.Error(cerr))
		refused, err = cfg, fmt.Errorf("tenant sent an invalid config: %w", cerr)
	}
	cached, lerr := p.loadConfig()
	if lerr == nil {
		snap, cerr := steering.Compile(&cached.Config.Steering)
		if cerr == nil {
			p.log.Warn("starting with the cached config", zap.NamedError("tenant", err), zap.Time("fetched", cached.Fetched))
			p.synced.Store(&syncState{cfg: withoutSteering(cached.Config), etag: cached.ETag, source: sourceCache, fetched: cached.Fetched})
			returnMemory()
			return snap, nil
		}
		p.log.Error("the cached config is refused by this version of the agent",
			zap.String("file", filepath.Join(p.who.dir, configFile)), zap.Error(cerr))
		if refused == nil {
			refused = cached.Config
		}
		lerr = fmt.Errorf("the cached config is invalid: %w", cerr)
	}
	if refused == nil {
		return nil, fmt.Errorf("fetch config: %w (and no usable cached config: %v)", err, lerr)
	}
	return p.steerNothing(refused)
}

// steerNothing puts in force a config with refused's tenant and PoP but no
// apps, exceptions or client switches: the agent runs, its tunnel connects and
// ztdiag works, and nothing is steered until the sync loop (or ztdiag update)
// brings a config this agent accepts. refused is not modified.
func (p *parts) steerNothing(refused *tenantapi.AgentConfig) (*steering.Snapshot, error) {
	empty := *refused
	empty.Steering = steering.Config{Apps: []steering.App{}}
	snap, err := steering.Compile(&empty.Steering)
	if err != nil {
		return nil, fmt.Errorf("compile an empty config: %w", err)
	}
	p.log.Error("no config this agent accepts: steering nothing until the tenant sends one",
		zap.String("tenant", refused.Tenant), zap.String("pop", refused.PoP.Address))
	p.synced.Store(&syncState{cfg: &empty, source: sourceNone})
	return snap, nil
}

// loadConfig reads the cached config; one cached for another device (an
// enrollment that was replaced) is no good.
func (p *parts) loadConfig() (*cachedConfig, error) {
	b, err := os.ReadFile(filepath.Join(p.who.dir, configFile))
	if err != nil {
		return nil, err
	}
	var c cachedConfig
	if err := json.Unmarshal(b, &c); err != nil || c.Config == nil {
		return nil, fmt.Errorf("%s is corrupt", configFile)
	}
	if id := p.ident.Load().id; c.DeviceID != "" && c.DeviceID != id.DeviceID {
		return nil, fmt.Errorf("%s was cached for device %s, not this enrollment's %s", configFile, c.DeviceID, id.DeviceID)
	}
	return &c, nil
}

func (p *parts) saveConfig(cfg *tenantapi.AgentConfig, etag string) {
	c := cachedConfig{DeviceID: p.ident.Load().id.DeviceID, ETag: etag, Fetched: time.Now(), Config: cfg}
	// Not indented: at 10,000 apps the indented copy of the encoding was
	// megabytes more at the start's peak.
	b, err := json.Marshal(c)
	if err == nil {
		err = atomicfile.Write(filepath.Join(p.who.dir, configFile), b, 0o600)
	}
	if err != nil {
		p.log.Warn("cannot cache config", zap.Error(err))
	}
}

// syncLoop polls the tenant for config changes, with jitter so that a fleet
// does not poll in lockstep, and applies each new config as one snapshot. It
// also syncs when the control API asks (`ztdiag update`), so syncs never run
// concurrently and an older fetch never replaces a newer one.
func (p *parts) syncLoop(ctx context.Context) {
	for {
		interval := p.snap.Load().Client().ConfigPoll.D()
		jitter := time.Duration(rand.Int64N(int64(interval)/5 + 1))
		t := time.NewTimer(interval - interval/10 + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case reply := <-p.syncNow:
			t.Stop()
			reply <- p.syncOnce(ctx)
		case <-t.C:
			if err := p.syncOnce(ctx); err != nil {
				p.log.Warn("config sync", zap.Error(err))
			}
		}
	}
}

// syncRequest asks syncLoop for a sync and waits for it; it gives up when
// ctx ends or the parts are torn down.
func (p *parts) syncRequest(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case p.syncNow <- reply:
	case <-p.ctx.Done():
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	return awaitReply(ctx, reply)
}

// syncOnce fetches the config and applies it if it changed. A config that does
// not validate is logged and never replaces the one in force.
func (p *parts) syncOnce(ctx context.Context) error {
	cur := p.synced.Load()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg, etag, err := p.ident.Load().cs.Fetch(ctx, cur.etag)
	if errors.Is(err, enroll.ErrNotModified) {
		return nil
	}
	if err != nil {
		return err
	}
	snap, err := p.compile(&cfg.Steering)
	if err != nil {
		return fmt.Errorf("tenant sent an invalid config, keeping the current one: %w", err)
	}
	old := p.snap.Load()
	p.apply(snap)
	p.saveConfig(cfg, etag)
	p.synced.Store(&syncState{cfg: withoutSteering(cfg), etag: etag, source: sourceTenant, fetched: time.Now()})
	returnMemory()
	p.log.Info("config updated", zap.String("etag", etag), zap.Int("apps", len(cfg.Steering.Apps)))
	if !slices.Equal(cur.cfg.DialList(), cfg.DialList()) {
		// The tunnel was built for the PoPs it dials: a new list is in force
		// only once the parts are built again, from the config just saved.
		submit(p.reqs, request{kind: reqRestart, gen: p.gen, why: "the tenant's PoP list changed"}, p.ctx.Done())
	} else if l3eWanted(cur.cfg) != l3eWanted(cfg) {
		// The same for the L3E tunnel: turned on, off, or another gateway.
		submit(p.reqs, request{kind: reqRestart, gen: p.gen, why: "the tenant's L3E gateway changed"}, p.ctx.Done())
	}
	if old.StubRange() != snap.StubRange() || old.StubRange6() != snap.StubRange6() {
		// The stub pools, the TUN's addresses and the DNS proxy's address
		// come from the stub ranges.
		submit(p.reqs, request{kind: reqRestart, gen: p.gen, why: "the tenant's stub ranges changed"}, p.ctx.Done())
	}
	return nil
}

// l3eWanted is the gateway cfg has the agent dial, none when L3E is off.
func l3eWanted(cfg *tenantapi.AgentConfig) tenantapi.PoPInfo {
	if cfg.Gateway == nil || !cfg.Steering.Client.DTLS {
		return tenantapi.PoPInfo{}
	}
	return *cfg.Gateway
}

// apply swaps in a new snapshot (or, while steering is turned off, keeps it
// for when it is turned on: steeringSwitch.put), then updates the routes and
// the OS resolver's routing domains for changed apps.
func (p *parts) apply(snap *steering.Snapshot) {
	p.a.steering.put(p, snap)
	p.applied()
}

// applied brings the routes, the resolver and the stack in line with the
// snapshot in force.
func (p *parts) applied() {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	snap := p.snap.Load()
	p.stack.SetIdleUDP(snap.Client().UDPIdleTimeout.D())
	p.sel.markStale()  // apps or their publishers may have changed
	p.onprem.recheck() // detection may have changed
	p.updateRoutes()
	if err := p.setDNS(); err != nil {
		p.log.Warn("update the system resolver", zap.Error(err))
	}
}

// withoutSteering returns a copy of cfg without its steering config: once
// compiled, the snapshot holds its own copy (Snapshot.Config), and keeping
// the decoded one as well would cost a large tenant's apps twice (about 5 MB
// live heap at 10,000 apps).
func withoutSteering(cfg *tenantapi.AgentConfig) *tenantapi.AgentConfig {
	c := *cfg
	c.Steering = steering.Config{}
	return &c
}

// forgetInitialConfig drops the config delivered with the enrollment from the
// identity once it is in force and cached, so that it is not kept for the
// agent's life (the config source holds the identity too). Only bring-up
// reads the field, before anything that could copy the identity (renewal)
// runs, so it is cleared in place.
func (p *parts) forgetInitialConfig() {
	p.ident.Load().id.InitialConfig = nil
}
