package agent

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
)

const stubsFile = "stubs.json"

// initStubs creates the stub pool and restores the assignments of the last run,
// so names that the OS or browsers cached keep working after a restart.
func (a *Agent) initStubs(snap *steering.Snapshot) error {
	stub := snap.StubRange()
	reserved := append([]netip.Prefix{netip.PrefixFrom(agentAddr(stub), 32)}, snap.Prefixes()...)
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
	b, err := os.ReadFile(filepath.Join(a.cfg.StateDir, stubsFile))
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

// stubsChanged marks the assignments dirty; stubSaver writes them.
func (a *Agent) stubsChanged() {
	select {
	case a.stubDirty <- struct{}{}:
	default: // a save is already pending
	}
}

// stubSaver persists assignments soon after they change, coalescing bursts (a
// page load resolves dozens of names) into one write per second at most. The
// final save happens in teardown, after the last flow.
func (a *Agent) stubSaver(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.stubDirty:
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
	return platform.WriteFileAtomic(filepath.Join(a.cfg.StateDir, stubsFile), b, 0o600)
}
