// Package platformtest holds in-memory fakes of the platform interfaces, so
// that the agent's logic is tested without root and without touching the
// machine.
package platformtest

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/ztagent/ztagent/platform"
)

// DNS is a fake platform.DNSConfigurator that records its calls. Set the
// exported error fields to make the next calls fail. It is safe for concurrent
// use.
type DNS struct {
	mu       sync.Mutex
	original []netip.AddrPort
	current  *platform.DNSConfig
	sets     []platform.DNSConfig
	calls    []string

	// SetErr, RestoreErr and UpstreamsErr, when non-nil, are returned by the
	// corresponding method, which then changes nothing.
	SetErr, RestoreErr, UpstreamsErr error
}

var _ platform.DNSConfigurator = (*DNS)(nil)

// NewDNS returns a fake whose original resolvers are upstreams.
func NewDNS(upstreams ...netip.AddrPort) *DNS {
	return &DNS{original: slices.Clone(upstreams)}
}

// Set records cfg as the current configuration.
func (d *DNS) Set(cfg platform.DNSConfig) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, "Set")
	if d.SetErr != nil {
		return d.SetErr
	}
	c := cloneConfig(cfg)
	d.current = &c
	d.sets = append(d.sets, cloneConfig(cfg))
	return nil
}

// Upstreams returns the resolvers given to NewDNS (or SetOriginal).
func (d *DNS) Upstreams() ([]netip.AddrPort, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, "Upstreams")
	if d.UpstreamsErr != nil {
		return nil, d.UpstreamsErr
	}
	return slices.Clone(d.original), nil
}

// Restore clears the current configuration.
func (d *DNS) Restore() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, "Restore")
	if d.RestoreErr != nil {
		return d.RestoreErr
	}
	d.current = nil
	return nil
}

// Mode reports "fake".
func (d *DNS) Mode() string { return "fake" }

// SetOriginal changes what Upstreams reports, as a network change would.
func (d *DNS) SetOriginal(upstreams ...netip.AddrPort) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.original = slices.Clone(upstreams)
}

// Current returns the configuration in force, and false when the OS resolver
// is as it was (never Set, or Restored since).
func (d *DNS) Current() (platform.DNSConfig, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current == nil {
		return platform.DNSConfig{}, false
	}
	return cloneConfig(*d.current), true
}

// Sets returns every configuration successfully Set, in order.
func (d *DNS) Sets() []platform.DNSConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]platform.DNSConfig, len(d.sets))
	for i, c := range d.sets {
		out[i] = cloneConfig(c)
	}
	return out
}

// Calls returns the names of the methods called ("Set", "Upstreams",
// "Restore"), in order, failed calls included.
func (d *DNS) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func cloneConfig(c platform.DNSConfig) platform.DNSConfig {
	return platform.DNSConfig{
		Servers:   slices.Clone(c.Servers),
		Domains:   slices.Clone(c.Domains),
		Search:    slices.Clone(c.Search),
		Interface: c.Interface,
	}
}
