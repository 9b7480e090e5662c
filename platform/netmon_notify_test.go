package platform

import (
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestIfaceState(t *testing.T) {
	eth := netIface{Name: "Ethernet", Up: true, Addrs: routerPrefixes("192.0.2.7/24", "fe80::1/64", "2001:db8::7/64")}
	wifi := netIface{Name: "Wi-Fi", Up: false, Addrs: routerPrefixes("198.51.100.3/24")}
	tun := netIface{Name: "ztagent", Up: true, Addrs: routerPrefixes("100.64.0.1/32")}
	base := ifaceState([]netIface{eth, wifi, tun}, []string{"ztagent"}, 4, 4)
	if want := "default4=4 default6=4 Ethernet=192.0.2.7/24 Ethernet=2001:db8::7/64"; base != want {
		t.Fatalf("state %q, want %q", base, want)
	}
	if s := ifaceState([]netIface{tun, wifi, eth}, []string{"ztagent"}, 4, 4); s != base {
		t.Errorf("the order of interfaces changed the state: %q", s)
	}
	tun.Addrs = routerPrefixes("100.64.0.1/32", "fd7a::1/128")
	if s := ifaceState([]netIface{eth, wifi, tun}, []string{"ztagent"}, 4, 4); s != base {
		t.Errorf("the agent's own TUN changed the state: %q", s)
	}
	wifi.Up = true
	if s := ifaceState([]netIface{eth, wifi, tun}, []string{"ztagent"}, 4, 4); s == base {
		t.Error("an interface coming up is no change")
	}
	if s := ifaceState([]netIface{eth, tun}, []string{"ztagent"}, 9, 4); s == base {
		t.Error("the default route moving is no change")
	}
}

// fakeNetReads hands notifyMonitor a scripted sequence of states.
type fakeNetReads struct {
	mu    sync.Mutex
	state string
	err   error
	reads int
}

func (f *fakeNetReads) set(s string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state, f.err = s, err
}

func (f *fakeNetReads) read() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.state, f.err
}

func (f *fakeNetReads) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// fakeNotifier is a subscription the test notifies and ends by hand.
type fakeNotifier struct {
	events notifyChan
	closed chan struct{}
}

func (n *fakeNotifier) Events() <-chan struct{} { return n.events }
func (n *fakeNotifier) Close()                  { close(n.closed) }

// fakeSubscriptions hands out fakeNotifiers, or fails while fail is set.
type fakeSubscriptions struct {
	mu   sync.Mutex
	subs []*fakeNotifier
	fail bool
	made chan *fakeNotifier
}

func newFakeSubscriptions() *fakeSubscriptions {
	return &fakeSubscriptions{made: make(chan *fakeNotifier, 16)}
}

func (f *fakeSubscriptions) subscribe() (netNotifier, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, errors.New("no subscription")
	}
	n := &fakeNotifier{events: newNotifyChan(), closed: make(chan struct{})}
	f.subs = append(f.subs, n)
	f.made <- n
	return n, nil
}

func (f *fakeSubscriptions) next(t *testing.T) *fakeNotifier {
	t.Helper()
	select {
	case n := <-f.made:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no subscription made")
		return nil
	}
}

// monitorProbe checks what a NetMonitor reports.
type monitorProbe struct {
	t *testing.T
	m NetMonitor
}

func (p monitorProbe) quiet() {
	p.t.Helper()
	select {
	case <-p.m.Changes():
		p.t.Fatal("a change reported with none made")
	case <-time.After(NetSettle + 100*time.Millisecond):
	}
}

func (p monitorProbe) changed() {
	p.t.Helper()
	select {
	case <-p.m.Changes():
	case <-time.After(5 * time.Second):
		p.t.Fatal("no change reported")
	}
}

func TestNotifyMonitor(t *testing.T) {
	f := &fakeNetReads{state: "a"}
	subs := newFakeSubscriptions()
	m, err := newNotifyMonitor(f.read, subs.subscribe, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	sub := subs.next(t)
	p := monitorProbe{t, m}
	p.quiet()

	f.set("b", nil) // changed, but nothing said so: not read yet
	p.quiet()
	for range 5 { // a burst: one read, one report
		sub.events.notify()
	}
	p.changed()
	p.quiet()
	reads := f.count()

	sub.events.notify() // notified, the state unchanged: read, not reported
	p.quiet()
	if f.count() == reads {
		t.Error("a notification was not followed by a read")
	}

	f.set("c", errors.New("transient"))
	sub.events.notify()
	p.quiet()
	f.set("c", nil)
	sub.events.notify()
	p.changed()

	// The OS ends the subscription: a new one is made and the state read
	// again, since changes may have been lost meanwhile.
	f.set("d", nil)
	close(sub.events)
	second := subs.next(t)
	p.changed()
	select {
	case <-sub.closed:
	default:
		t.Error("the lost subscription was not closed")
	}

	m.Close()
	select {
	case <-second.closed:
	default:
		t.Error("Close left the subscription open")
	}
}

// TestNotifyMonitorPollsWithoutSubscription: when no subscription can be
// made the monitor reads the state every netPoll, and subscribes as soon as
// it can.
func TestNotifyMonitorPollsWithoutSubscription(t *testing.T) {
	f := &fakeNetReads{state: "a"}
	subs := newFakeSubscriptions()
	subs.fail = true
	m, err := newNotifyMonitor(f.read, subs.subscribe, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p := monitorProbe{t, m}
	f.set("b", nil)
	p.changed() // found by polling
	subs.mu.Lock()
	subs.fail = false
	subs.mu.Unlock()
	sub := subs.next(t)
	f.set("c", nil)
	sub.events.notify()
	p.changed()
}

// TestNotifyMonitorPollsAfterLostSubscription: a subscription the OS ends
// and that cannot be renewed leaves the monitor polling every netPoll, not
// waiting for the next resync.
func TestNotifyMonitorPollsAfterLostSubscription(t *testing.T) {
	f := &fakeNetReads{state: "a"}
	subs := newFakeSubscriptions()
	m, err := newNotifyMonitor(f.read, subs.subscribe, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub := subs.next(t)
	subs.mu.Lock()
	subs.fail = true
	subs.mu.Unlock()
	close(sub.events)
	p := monitorProbe{t, m}
	p.quiet() // read again after the loss: unchanged
	f.set("b", nil)
	p.changed() // found by polling
}

func TestNotifyMonitorFirstReadFails(t *testing.T) {
	subs := newFakeSubscriptions()
	if _, err := newNotifyMonitor(func() (string, error) { return "", errors.New("boom") }, subs.subscribe,
		zaptest.NewLogger(t)); err == nil {
		t.Fatal("no error")
	}
	select {
	case n := <-subs.made:
		select {
		case <-n.closed:
		default:
			t.Error("the subscription was left open")
		}
	default:
	}
}

func TestRouteMessageMatters(t *testing.T) {
	for _, c := range []struct {
		msg  []byte
		want bool
	}{
		{[]byte{0x5c, 0, 5, rtmAdd}, true},
		{[]byte{0x5c, 0, 5, rtmDelete, 0, 0}, true},
		{[]byte{0x5c, 0, 5, rtmChange}, true},
		{[]byte{0x5c, 0, 5, rtmNewAddr}, true},
		{[]byte{0x5c, 0, 5, rtmDelAddr}, true},
		{[]byte{0x5c, 0, 5, rtmIfInfo}, true},
		{[]byte{0x5c, 0, 5, 0x4}, false}, // RTM_GET
		{[]byte{0x5c, 0, 5, 0x7}, false}, // RTM_MISS
		{[]byte{0x5c, 0, 5}, false},
		{nil, false},
	} {
		if got := routeMessageMatters(c.msg); got != c.want {
			t.Errorf("routeMessageMatters(% x) = %v, want %v", c.msg, got, c.want)
		}
	}
}
