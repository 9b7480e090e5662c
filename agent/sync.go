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
	ETag    string                 `json:"etag"`
	Fetched time.Time              `json:"fetched"`
	Config  *tenantapi.AgentConfig `json:"config"`
}

const configFile = "config.json"

// initialConfig fetches the config, or falls back to the last good copy.
func (a *Agent) initialConfig(ctx context.Context) (*steering.Snapshot, error) {
	cfg, etag, err := a.ident.Load().id.InitialConfig, "", error(nil)
	if cfg == nil {
		// Not a fresh enrollment (whose response carries the first config).
		cfg, etag, err = a.ident.Load().cc.Fetch(ctx, "")
	}
	if err == nil {
		snap, cerr := steering.Compile(&cfg.Steering)
		if cerr != nil {
			return nil, fmt.Errorf("tenant sent an invalid config: %w", cerr)
		}
		a.synced.Store(&syncState{cfg: cfg, etag: etag, source: "tenant", fetched: time.Now()})
		a.saveConfig(cfg, etag)
		return snap, nil
	}
	cached, cerr := a.loadConfig()
	if cerr != nil {
		return nil, fmt.Errorf("fetch config: %w (and no usable cached config: %v)", err, cerr)
	}
	snap, cerr := steering.Compile(&cached.Config.Steering)
	if cerr != nil {
		return nil, fmt.Errorf("fetch config: %w (and the cached config is invalid: %v)", err, cerr)
	}
	a.log.Warn("tenant unreachable, starting with the cached config", zap.Error(err), zap.Time("fetched", cached.Fetched))
	a.synced.Store(&syncState{cfg: cached.Config, etag: cached.ETag, source: "cache", fetched: cached.Fetched})
	return snap, nil
}

func (a *Agent) loadConfig() (*cachedConfig, error) {
	b, err := os.ReadFile(filepath.Join(a.whom().dir, configFile))
	if err != nil {
		return nil, err
	}
	var c cachedConfig
	if err := json.Unmarshal(b, &c); err != nil || c.Config == nil {
		return nil, fmt.Errorf("%s is corrupt", configFile)
	}
	return &c, nil
}

func (a *Agent) saveConfig(cfg *tenantapi.AgentConfig, etag string) {
	b, err := json.MarshalIndent(cachedConfig{ETag: etag, Fetched: time.Now(), Config: cfg}, "", "  ")
	if err == nil {
		err = atomicfile.Write(filepath.Join(a.whom().dir, configFile), b, 0o600)
	}
	if err != nil {
		a.log.Warn("cannot cache config", zap.Error(err))
	}
}

// syncLoop polls the tenant for config changes, with jitter so that a fleet
// does not poll in lockstep, and applies each new config as one snapshot.
func (a *Agent) syncLoop(ctx context.Context) {
	for {
		interval := a.snap.Load().Config().Client.ConfigPoll.D()
		jitter := time.Duration(rand.Int64N(int64(interval)/5 + 1))
		t := time.NewTimer(interval - interval/10 + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := a.syncOnce(ctx); err != nil {
			a.log.Warn("config sync", zap.Error(err))
		}
	}
}

// syncOnce fetches the config and applies it if it changed. A config that does
// not validate is logged and never replaces the one in force.
func (a *Agent) syncOnce(ctx context.Context) error {
	cur := a.synced.Load()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg, etag, err := a.ident.Load().cc.Fetch(ctx, cur.etag)
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
	a.apply(snap)
	a.synced.Store(&syncState{cfg: cfg, etag: etag, source: "tenant", fetched: time.Now()})
	a.saveConfig(cfg, etag)
	a.log.Info("config updated", zap.String("etag", etag), zap.Int("apps", len(cfg.Steering.Apps)))
	return nil
}

// apply swaps in a new snapshot, then updates the routes and the OS resolver's
// routing domains for changed apps.
func (a *Agent) apply(snap *steering.Snapshot) {
	a.snap.Store(snap)
	a.updateRoutes()
	if err := a.dnsCfg.Set(a.dnsConfig()); err != nil {
		a.log.Warn("update the system resolver", zap.Error(err))
	}
}
