package platform

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// pollMonitor is the NetMonitor of Windows and macOS: it reads the network
// state (pollState: the addresses of the interfaces that are up, and the
// interface of the default route of each family) every netPoll, and reports
// a change once a new state has held for two reads in a row, so a burst is
// reported once. It needs no subscription to the OS's notifications
// (NotifyRouteChange2, the routing socket), at the cost of noticing a change
// up to two polls late.
type pollMonitor struct {
	read    func() (string, error)
	every   time.Duration
	log     *zap.Logger
	changes chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// netPoll is how often pollMonitor reads the network state.
const netPoll = time.Second

func newPollMonitor(read func() (string, error), every time.Duration, log *zap.Logger) (*pollMonitor, error) {
	if log == nil {
		log = zap.NewNop()
	}
	last, err := read()
	if err != nil {
		return nil, fmt.Errorf("read the network configuration: %w", err)
	}
	m := &pollMonitor{read: read, every: every, log: log.Named("netmon"), changes: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go m.run(last)
	return m, nil
}

func (m *pollMonitor) Changes() <-chan struct{} { return m.changes }

func (m *pollMonitor) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	return nil
}

func (m *pollMonitor) run(last string) {
	defer close(m.done)
	tick := time.NewTicker(m.every)
	defer tick.Stop()
	prev := last // the previous read
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		cur, err := m.read()
		if err != nil {
			m.log.Warn("read the network configuration", zap.Error(err))
			continue
		}
		settled := cur == prev
		prev = cur
		if !settled || cur == last {
			continue
		}
		m.log.Info("network changed", zap.String("now", cur))
		last = cur
		select {
		case m.changes <- struct{}{}:
		default: // one is waiting already
		}
	}
}

// netIface is one interface as pollState sees it.
type netIface struct {
	Name  string
	Up    bool
	Addrs []netip.Prefix
}

// pollState describes what of the network matters to the agent: the
// addresses of the interfaces that are up, except those in ignore (the
// agent's own TUN), and the interface index of the default route of each
// family (0: none). Equal states are equal strings.
func pollState(ifs []netIface, ignore []string, def4, def6 int) string {
	var parts []string
	for _, i := range ifs {
		if !i.Up || slices.Contains(ignore, i.Name) {
			continue
		}
		for _, a := range i.Addrs {
			if !a.Addr().IsLinkLocalUnicast() {
				parts = append(parts, i.Name+"="+a.String())
			}
		}
	}
	slices.Sort(parts)
	return fmt.Sprintf("default4=%d default6=%d %s", def4, def6, strings.Join(parts, " "))
}
