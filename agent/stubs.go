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
func (a *Agent) initStubs(snap *steering.Snapshot) error {
	stub := snap.StubRange()
	// Never hand out the agent's own address, an app's real addresses, or an
	// address of this machine's interfaces (a CGNAT carrier or another VPN
	// may use 100.64/10 too).
	reserved := append([]netip.Prefix{netip.PrefixFrom(agentAddr(stub), 32)}, snap.Prefixes()...)
	reserved = append(reserved, localPrefixes(a.log)...)
	pool, err := steering.NewStubPool(steering.StubPoolConfig{
		Prefix:   stub,
		Reserved: reserved,
		TTL:      snap.Config().Client.DNSTTL.D(),
		IdleTime: 10 * time.Minute,
		OnChange: a.stubsChanged,
	})
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(a.whom().dir, stubsFile))
	switch {
	case err == nil:
		if err := pool.RestoreState(b); err != nil {
			a.log.Warn("stub assignments unreadable, starting afresh", zap.Error(err))
		}
	case !errors.Is(err, os.ErrNotExist):
		a.log.Warn("read stub assignments", zap.Error(err))
	}
	a.stubs = pool
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
func (a *Agent) stubsChanged() {
	select {
	case a.stubDirty <- struct{}{}:
	default: // a save is already pending
	}
}

// stubSaver persists assignments soon after they change, coalescing bursts (a
// page load resolves dozens of names) into one write per second at most, and
// every few minutes in any case, since refreshed answer times (which decide
// recycling) do not mark the pool dirty. The final save happens in teardown,
// after the last flow.
func (a *Agent) stubSaver(ctx context.Context) {
	periodic := time.NewTicker(5 * time.Minute)
	defer periodic.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.stubDirty:
		case <-periodic.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if err := a.saveStubs(); err != nil {
			a.log.Warn("save stub assignments", zap.Error(err))
		}
	}
}

func (a *Agent) saveStubs() error {
	b, err := a.stubs.MarshalState()
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(a.whom().dir, stubsFile), b, 0o600)
}
