package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/ztagent/ztagent/platform/atomicfile"
)

// poolFile holds the addresses given out, so a device keeps its VPN address
// (and so its DNS name) across reconnects and gateway restarts.
const poolFile = "l3e-addresses.json"

// ErrPoolFull is returned when every address of the pool is taken.
var ErrPoolFull = errors.New("gateway: VPN address pool exhausted")

// pool gives each device one address of prefix, stable for that device. The
// first host address is the gateway's own; devices get the ones after it.
type pool struct {
	mu     sync.Mutex
	prefix netip.Prefix
	path   string // "" = memory only
	byDev  map[string]netip.Addr
	used   map[netip.Addr]string
}

type poolState struct {
	Pool    netip.Prefix          `json:"pool"`
	Devices map[string]netip.Addr `json:"devices"`
}

// openPool loads the addresses given out before; those outside prefix (the
// pool was changed) are forgotten.
func openPool(prefix netip.Prefix, stateDir string) (*pool, error) {
	p := &pool{prefix: prefix.Masked(), byDev: map[string]netip.Addr{}, used: map[netip.Addr]string{}}
	if stateDir == "" {
		return p, nil
	}
	p.path = filepath.Join(stateDir, poolFile)
	data, err := os.ReadFile(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	var st poolState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("gateway: %s: %w (fix or remove it; devices would change addresses)", p.path, err)
	}
	for dev, a := range st.Devices {
		if p.prefix.Contains(a) && a != p.gatewayAddr() && p.used[a] == "" {
			p.byDev[dev], p.used[a] = a, dev
		}
	}
	return p, nil
}

// gatewayAddr is the pool's first host address, the gateway's own.
func (p *pool) gatewayAddr() netip.Addr { return p.prefix.Addr().Next() }

// addr returns dev's address, giving it the lowest free one the first time
// and persisting that before returning it.
func (p *pool) addr(dev string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byDev[dev]; ok {
		return a, nil
	}
	for a := p.gatewayAddr().Next(); p.prefix.Contains(a); a = a.Next() {
		if p.used[a] != "" || (a.Is4() && !p.prefix.Contains(a.Next())) { // the IPv4 broadcast address
			continue
		}
		p.byDev[dev], p.used[a] = a, dev
		if err := p.saveLocked(); err != nil {
			delete(p.byDev, dev)
			delete(p.used, a)
			return netip.Addr{}, err
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("%w (%s)", ErrPoolFull, p.prefix)
}

func (p *pool) saveLocked() error {
	if p.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(poolState{Pool: p.prefix, Devices: p.byDev}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(p.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("gateway: save addresses: %w", err)
	}
	return nil
}
