package platform

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// notifyMonitor is the NetMonitor of every OS that has one: the OS's
// notifications (netlink on Linux, the routing socket on macOS,
// NotifyRouteChange2 and its siblings on Windows) only say that something
// changed; after a burst settles the monitor reads the network state and
// reports a change only if it differs from the last one reported, so the
// agent's own route updates on its TUN device, address lifetimes being
// refreshed and the like cost one read and nothing more.
//
// A subscription the OS ends (a netlink socket that overflowed, a routing
// socket that failed) is renewed and the state read again, since changes may
// have been lost. Without a subscription (none could be made) the monitor
// reads the state every netPoll, as a poller would; with one it still reads
// it every netResync, which costs nothing noticeable and bounds how long a
// notification the OS never sent can go unnoticed.
type notifyMonitor struct {
	read      func() (string, error)
	subscribe func() (netNotifier, error)
	log       *zap.Logger
	changes   chan struct{}
	stop      chan struct{}
	done      chan struct{} // closed when run has exited
}

// netNotifier is one subscription to the OS's network notifications.
type netNotifier interface {
	// Events receives a value after a notification; several may coalesce
	// into one. It is closed when the OS ended the subscription.
	Events() <-chan struct{}
	// Close ends the subscription and returns once its goroutines are gone.
	Close()
}

// How often the state is read without a notification: every netPoll when
// there is no subscription, every netResync when there is.
const (
	netPoll   = time.Second
	netResync = time.Minute
)

// newNotifyMonitor subscribes and reads the first state. A first read that
// fails is an error; a subscription that fails is logged and retried, the
// monitor polling meanwhile.
func newNotifyMonitor(read func() (string, error), subscribe func() (netNotifier, error), log *zap.Logger) (*notifyMonitor, error) {
	if log == nil {
		log = zap.NewNop()
	}
	m := &notifyMonitor{read: read, subscribe: subscribe, log: log.Named("netmon"),
		changes: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	sub := m.renew(nil)
	last, err := read()
	if err != nil {
		if sub != nil {
			sub.Close()
		}
		return nil, fmt.Errorf("read the network configuration: %w", err)
	}
	go m.run(sub, last)
	return m, nil
}

func (m *notifyMonitor) Changes() <-chan struct{} { return m.changes }

func (m *notifyMonitor) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	return nil
}

// run waits for notifications, lets each burst settle, and reports a change
// when the network state differs from the last one reported.
func (m *notifyMonitor) run(sub netNotifier, last string) {
	defer close(m.done)
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	resync := time.NewTimer(m.resyncAfter(sub))
	var burst time.Time // when the burst being settled began; zero when none
	notified := func() {
		now := time.Now()
		if burst.IsZero() {
			burst = now
		}
		settle.Reset(min(NetSettle, burst.Add(netSettleMax).Sub(now)))
	}
	defer func() {
		settle.Stop()
		resync.Stop()
		if sub != nil {
			sub.Close()
		}
	}()
	for {
		var events <-chan struct{}
		if sub != nil {
			events = sub.Events()
		}
		select {
		case <-m.stop:
			return
		case _, ok := <-events:
			if !ok {
				sub = m.renew(sub)
				// Polling at once if none could be made.
				resync.Reset(m.resyncAfter(sub))
			}
			notified()
			continue
		case <-resync.C:
			if sub == nil {
				sub = m.renew(nil)
			}
			resync.Reset(m.resyncAfter(sub))
		case <-settle.C:
			burst = time.Time{}
		}
		cur, err := m.read()
		if err != nil {
			m.log.Warn("read the network configuration", zap.Error(err))
			continue
		}
		if cur == last {
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

func (m *notifyMonitor) resyncAfter(sub netNotifier) time.Duration {
	if sub == nil {
		return netPoll
	}
	return netResync
}

// renew replaces a subscription the OS ended (or makes the first). On
// failure it returns nil, and run polls until a later try succeeds.
func (m *notifyMonitor) renew(old netNotifier) netNotifier {
	if old != nil {
		old.Close()
		m.log.Warn("network notifications lost; subscribing again")
	}
	sub, err := m.subscribe()
	if err != nil {
		m.log.Warn("subscribe to network notifications (polling meanwhile)", zap.Error(err))
		return nil
	}
	return sub
}

// notifyChan is the part of a netNotifier every OS shares: a one-slot
// channel that notifications coalesce into, closed when the subscription is
// lost.
type notifyChan chan struct{}

func newNotifyChan() notifyChan { return make(notifyChan, 1) }

// notify records a notification without ever blocking the OS's callback or
// reader.
func (c notifyChan) notify() {
	select {
	case c <- struct{}{}:
	default:
	}
}
