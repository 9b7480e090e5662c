package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
	"github.com/ztagent/ztagent/steering"
)

// syncState is the config in force and where it came from.
type syncState struct {
	cfg     *tenantapi.AgentConfig
	etag    string
	source  string // "tenant" or "cache"
	fetched time.Time
}

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

// initialConfig fetches the config, or falls back to the last good copy.
func (p *parts) initialConfig(ctx context.Context) (*steering.Snapshot, error) {
	cfg, etag, err := p.ident.Load().id.InitialConfig, "", error(nil)
	if cfg == nil {
		// Not a fresh enrollment (whose response carries the first config).
		cfg, etag, err = p.ident.Load().cs.Fetch(ctx, "")
	}
	if err == nil {
		snap, cerr := steering.Compile(&cfg.Steering)
		if cerr != nil {
			return nil, fmt.Errorf("tenant sent an invalid config: %w", cerr)
		}
		p.synced.Store(&syncState{cfg: cfg, etag: etag, source: "tenant", fetched: time.Now()})
		p.saveConfig(cfg, etag)
		return snap, nil
	}
	cached, cerr := p.loadConfig()
	if cerr != nil {
		return nil, fmt.Errorf("fetch config: %w (and no usable cached config: %v)", err, cerr)
	}
	snap, cerr := steering.Compile(&cached.Config.Steering)
	if cerr != nil {
		return nil, fmt.Errorf("fetch config: %w (and the cached config is invalid: %v)", err, cerr)
	}
	p.log.Warn("tenant unreachable, starting with the cached config", zap.Error(err), zap.Time("fetched", cached.Fetched))
	p.synced.Store(&syncState{cfg: cached.Config, etag: cached.ETag, source: "cache", fetched: cached.Fetched})
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
	b, err := json.MarshalIndent(c, "", "  ")
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
		interval := p.snap.Load().Config().Client.ConfigPoll.D()
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
	snap, err := steering.Compile(&cfg.Steering)
	if err != nil {
		return fmt.Errorf("tenant sent an invalid config, keeping the current one: %w", err)
	}
	p.apply(snap)
	p.synced.Store(&syncState{cfg: cfg, etag: etag, source: "tenant", fetched: time.Now()})
	p.saveConfig(cfg, etag)
	p.log.Info("config updated", zap.String("etag", etag), zap.Int("apps", len(cfg.Steering.Apps)))
	return nil
}

// apply swaps in a new snapshot, then updates the routes and the OS resolver's
// routing domains for changed apps.
func (p *parts) apply(snap *steering.Snapshot) {
	p.snap.Store(snap)
	p.updateRoutes()
	if err := p.dnsCfg.Set(p.dnsConfig()); err != nil {
		p.log.Warn("update the system resolver", zap.Error(err))
	}
}
