package platformtest

import (
	"sync"

	"github.com/ztagent/ztagent/platform"
)

// NetMonitor is a platform.NetMonitor whose network changes the test makes
// with Change.
type NetMonitor struct {
	ch     chan struct{}
	mu     sync.Mutex
	closed bool
}

var _ platform.NetMonitor = (*NetMonitor)(nil)

// NewNetMonitor returns a monitor that reports nothing until Change.
func NewNetMonitor() *NetMonitor { return &NetMonitor{ch: make(chan struct{}, 1)} }

// Change reports a network change (coalesced with one not yet received, as
// the real monitors do). It does nothing after Close.
func (m *NetMonitor) Change() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	select {
	case m.ch <- struct{}{}:
	default:
	}
}

// Changes implements platform.NetMonitor.
func (m *NetMonitor) Changes() <-chan struct{} { return m.ch }

// Close implements platform.NetMonitor.
func (m *NetMonitor) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Closed reports whether Close was called.
func (m *NetMonitor) Closed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}
