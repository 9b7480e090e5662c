package platformtest

import (
	"errors"
	"sync"

	"github.com/ztagent/ztagent/platform"
)

// Router is an in-memory platform.Router that records what the agent asked
// for, so agent logic is tested without root.
type Router struct {
	mu     sync.Mutex
	cur    platform.RouterConfig
	sets   int
	closed bool
}

var _ platform.Router = (*Router)(nil)

// Set records cfg as the applied config.
func (r *Router) Set(cfg platform.RouterConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("router closed")
	}
	r.cur = cfg
	r.sets++
	return nil
}

// Close removes the applied config.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.cur = platform.RouterConfig{}
	return nil
}

// Current returns the applied config and whether Close was called.
func (r *Router) Current() (cfg platform.RouterConfig, closed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, r.closed
}
