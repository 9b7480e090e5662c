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

const stubsFile = "stubs.json"

// initStubs creates the stub pool and restores the assignments of the last run,
// so names that the OS or browsers cached keep working after a restart.
func (p *parts) initStubs(snap *steering.Snapshot) error {
	stub := snap.StubRange()
	// Never hand out the agent's own address, an app's real addresses, or an
	// address of this machine's interfaces (a CGNAT carrier or another VPN
	// may use 100.64/10 too).
	reserved := append([]netip.Prefix{netip.PrefixFrom(agentAddr(stub), 32)}, snap.Prefixes()...)
	reserved = append(reserved, localPrefixes(p.log)...)
	pool, err := steering.NewStubPool(steering.StubPoolConfig{
		Prefix:   stub,
		Reserved: reserved,
		TTL:      snap.Config().Client.DNSTTL.D(),
		IdleTime: 10 * time.Minute,
		OnChange: p.stubsChanged,
	})
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(p.who.dir, stubsFile))
	switch {
	case err == nil:
		if err := pool.RestoreState(b); err != nil {
			p.log.Warn("stub assignments unreadable, starting afresh", zap.Error(err))
		}
	case !errors.Is(err, os.ErrNotExist):
		p.log.Warn("read stub assignments", zap.Error(err))
	}
	p.stubs = pool
	return nil
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
	b, err := p.stubs.MarshalState()
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(p.who.dir, stubsFile), b, 0o600)
}
