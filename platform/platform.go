// Package platform holds everything that differs per operating system: the TUN
// device and its addresses and routes, the OS resolver configuration, the local
// control socket and its peer credentials, and the state directory. Each concern
// is one small interface in a file of its own, implemented once per OS in files
// named *_linux.go, *_darwin.go and *_windows.go, with a fallback for other
// systems and an in-memory fake in platformtest, so that the agent's logic is
// tested without root.
package platform

import (
	"net/netip"
)

// DNSConfig is what the agent asks of the OS resolver.
type DNSConfig struct {
	// Servers are the agent's DNS proxy addresses.
	Servers []netip.Addr
	// Domains, when non-empty, are routing domains: only names under them are
	// sent to Servers (systemd-resolved "~domain", /etc/resolver/<domain>, NRPT).
	// Empty means every name goes to Servers.
	Domains []string
	// Search domains appended to single-label names.
	Search []string
	// Interface is the agent's TUN device. Resolvers configured per link
	// (systemd-resolved) attach Servers and Domains to it; the others ignore it.
	Interface string
}

// DNSConfigurator points the OS resolver at the agent and puts it back.
// Implementations journal every change in the state directory before applying it,
// and repair the leftovers of a crashed run when they are created.
type DNSConfigurator interface {
	// Set applies cfg, replacing any earlier Set.
	Set(cfg DNSConfig) error
	// Upstreams reports the resolvers the OS used before the agent took over.
	Upstreams() ([]netip.AddrPort, error)
	// Restore puts the OS resolver back exactly as it was before the first Set.
	Restore() error
	// Mode names the mechanism in use ("resolv.conf", "systemd-resolved", ...).
	Mode() string
}
