package agenttest

import (
	"context"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// Configs is a fake tenant config service. Its NewSource fits
// agent.Config.NewConfigSource (wrapped to the interface type): every
// identity's source serves the config last Set, with an ETag that changes
// with it.
type Configs struct {
	mu      sync.Mutex
	hook    func(ctx context.Context) error
	cfg     *tenantapi.AgentConfig
	version int
	err     error
	fetches int
}

// NewConfigs serves cfg.
func NewConfigs(cfg *tenantapi.AgentConfig) *Configs {
	return &Configs{cfg: cfg, version: 1}
}

// Set serves cfg from now on, under a new ETag.
func (c *Configs) Set(cfg *tenantapi.AgentConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg = cfg
	c.version++
}

// Fail makes fetches fail with err (nil: succeed again), as an unreachable
// tenant would.
func (c *Configs) Fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// SetHook sets a function that runs first in every fetch; an error fails
// it. It may block (honouring ctx) to stand in for a slow tenant. nil
// removes it.
func (c *Configs) SetHook(hook func(ctx context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hook = hook
}

// Fetches counts the fetches so far.
func (c *Configs) Fetches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

// Source is one identity's view of Configs.
type Source struct {
	c  *Configs
	id *enroll.Identity
}

// NewSource returns the source for id.
func (c *Configs) NewSource(id *enroll.Identity, _ *zap.Logger) (*Source, error) {
	return &Source{c: c, id: id}, nil
}

// Fetch returns the config, or enroll.ErrNotModified when etag is current.
func (s *Source) Fetch(ctx context.Context, etag string) (*tenantapi.AgentConfig, string, error) {
	c := s.c
	c.mu.Lock()
	hook := c.hook
	c.mu.Unlock()
	if hook != nil {
		if err := hook(ctx); err != nil {
			return nil, "", err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetches++
	if c.err != nil {
		return nil, "", c.err
	}
	cur := fmt.Sprintf(`"v%d"`, c.version)
	if etag == cur {
		return nil, etag, enroll.ErrNotModified
	}
	cp := *c.cfg
	cp.Tenant, cp.User = s.id.Tenant, s.id.User
	return &cp, cur, nil
}

// Close does nothing: a fake has no connections.
func (s *Source) Close() {}
