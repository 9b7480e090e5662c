package agent

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform/atomicfile"
	"github.com/ztagent/ztagent/steering"
)

// The stub assignments of the stub range and of the IPv6 stub range, each in
// its own file (a state directory of an agent without IPv6 stubs keeps only
// the first, as before).
const (
	stubsFile  = "stubs.json"
	stubs6File = "stubs6.json"
)

// initStubs creates the stub pools (the IPv6 one when the config has an IPv6
// stub range) and restores the assignments of the last run, so names that
// the OS or browsers cached keep working after a restart.
func (p *parts) initStubs(snap *steering.Snapshot) error {
	v4, err := p.newStubPool(snap, snap.StubRange(), stubsFile)
	if err != nil {
		return err
	}
	p.stubs = &stubPools{v4: v4}
	if r6 := snap.StubRange6(); r6.IsValid() {
		if p.stubs.v6, err = p.newStubPool(snap, r6, stubs6File); err != nil {
			return err
		}
	}
	return nil
}

// newStubPool creates the pool of the stub range stub and restores its
// assignments from the state file name.
func (p *parts) newStubPool(snap *steering.Snapshot, stub netip.Prefix, name string) (*steering.StubPool, error) {
	// Never hand out the agent's own address, an app's real addresses, or an
	// address of this machine's interfaces (a CGNAT carrier or another VPN
	// may use 100.64/10 too). The pool ignores those of the other family.
	reserved := append([]netip.Prefix{netip.PrefixFrom(agentAddr(stub), agentAddr(stub).BitLen())}, snap.Prefixes()...)
	reserved = append(reserved, localPrefixes(p.log)...)
	pool, err := steering.NewStubPool(steering.StubPoolConfig{
		Prefix:   stub,
		Reserved: reserved,
		TTL:      snap.Client().DNSTTL.D(),
		IdleTime: 10 * time.Minute,
		OnChange: p.stubsChanged,
	})
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(p.who.dir, name))
	switch {
	case err == nil:
		if err := pool.RestoreState(b); err != nil {
			p.log.Warn("stub assignments unreadable, starting afresh", zap.String("file", name), zap.Error(err))
		}
	case !errors.Is(err, os.ErrNotExist):
		p.log.Warn("read stub assignments", zap.String("file", name), zap.Error(err))
	}
	return pool, nil
}

// localPrefixes lists the prefixes of this machine's interface addresses.
func localPrefixes(log *zap.Logger) []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		log.Warn("list interface addresses", zap.Error(err))
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, _ := ipn.Mask.Size()
		out = append(out, netip.PrefixFrom(addr.Unmap(), ones).Masked())
	}
	return out
}

// stubsChanged marks the assignments dirty; stubSaver writes them.
func (p *parts) stubsChanged() {
	select {
	case p.stubDirty <- struct{}{}:
	default: // a save is already pending
	}
}

// stubSaver persists assignments soon after they change, coalescing bursts (a
// page load resolves dozens of names) into one write per second at most, and
// every few minutes in any case, since refreshed answer times (which decide
// recycling) do not mark the pool dirty. A save that fails (a full disk, no
// descriptor free) is tried again after a pause that doubles from a second to
// a minute. The final save happens in teardown, after the last flow.
func (p *parts) stubSaver(ctx context.Context) {
	periodic := time.NewTicker(5 * time.Minute)
	defer periodic.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	var pause time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.stubDirty:
		case <-periodic.C:
		case <-retry.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if err := p.saveStubs(); err != nil {
			pause = min(max(2*pause, time.Second), time.Minute)
			p.log.Warn("save stub assignments; will retry", zap.Duration("in", pause), zap.Error(err))
			retry.Reset(pause)
			continue
		}
		pause = 0
		retry.Stop()
	}
}

func (p *parts) saveStubs() error {
	if err := p.saveStubPool(p.stubs.v4, stubsFile); err != nil {
		return err
	}
	if v6 := p.stubs.v6; v6 != nil {
		return p.saveStubPool(v6, stubs6File)
	}
	return nil
}

func (p *parts) saveStubPool(pool *steering.StubPool, name string) error {
	b, err := pool.MarshalState()
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(p.who.dir, name), b, 0o600)
}
