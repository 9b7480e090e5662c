package platform

import "net/netip"

// RouterConfig is the addressing and routing the agent wants on its TUN device.
type RouterConfig struct {
	// Interface is the TUN device's name.
	Interface string
	// Addrs are the agent's own addresses on the device (host prefixes).
	Addrs []netip.Prefix
	// Routes are the prefixes sent into the device: the stub range and the real
	// prefixes of IP/CIDR apps.
	Routes []netip.Prefix
}

// Router applies a RouterConfig to the OS. Set may be called again with a new
// config (after a config sync) and changes only the difference. Close removes
// everything Set added and leaves whatever else the OS had untouched: an entry
// that was there before Set is never the agent's to remove. Implementations
// journal each change in the state directory before making it, and NewRouter
// removes what a run that did not stop cleanly left.
type Router interface {
	Set(cfg RouterConfig) error
	Close() error
}
