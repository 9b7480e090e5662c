package platform

import (
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestPollState(t *testing.T) {
	eth := netIface{Name: "Ethernet", Up: true, Addrs: routerPrefixes("192.0.2.7/24", "fe80::1/64", "2001:db8::7/64")}
	wifi := netIface{Name: "Wi-Fi", Up: false, Addrs: routerPrefixes("198.51.100.3/24")}
	tun := netIface{Name: "ztagent", Up: true, Addrs: routerPrefixes("100.64.0.1/32")}
	base := pollState([]netIface{eth, wifi, tun}, []string{"ztagent"}, 4, 4)
	if want := "default4=4 default6=4 Ethernet=192.0.2.7/24 Ethernet=2001:db8::7/64"; base != want {
		t.Fatalf("state %q, want %q", base, want)
	}
	if s := pollState([]netIface{tun, wifi, eth}, []string{"ztagent"}, 4, 4); s != base {
		t.Errorf("the order of interfaces changed the state: %q", s)
	}
	tun.Addrs = routerPrefixes("100.64.0.1/32", "fd7a::1/128")
	if s := pollState([]netIface{eth, wifi, tun}, []string{"ztagent"}, 4, 4); s != base {
		t.Errorf("the agent's own TUN changed the state: %q", s)
	}
	wifi.Up = true
	if s := pollState([]netIface{eth, wifi, tun}, []string{"ztagent"}, 4, 4); s == base {
		t.Error("an interface coming up is no change")
	}
	if s := pollState([]netIface{eth, tun}, []string{"ztagent"}, 9, 4); s == base {
		t.Error("the default route moving is no change")
	}
}

// fakeNetReads hands pollMonitor a scripted sequence of states.
type fakeNetReads struct {
	mu    sync.Mutex
	state string
	err   error
}

func (f *fakeNetReads) set(s string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state, f.err = s, err
}

func (f *fakeNetReads) read() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, f.err
}

func TestPollMonitor(t *testing.T) {
	f := &fakeNetReads{state: "a"}
	m, err := newPollMonitor(f.read, 5*time.Millisecond, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	quiet := func() {
		t.Helper()
		select {
		case <-m.Changes():
			t.Fatal("a change reported with none made")
		case <-time.After(50 * time.Millisecond):
		}
	}
	changed := func() {
		t.Helper()
		select {
		case <-m.Changes():
		case <-time.After(5 * time.Second):
			t.Fatal("no change reported")
		}
	}
	quiet()
	f.set("b", nil)
	changed()
	quiet() // once per change
	f.set("b", errors.New("transient"))
	quiet()
	f.set("b", nil)
	quiet() // the same state after a failed read
	f.set("c", nil)
	changed()
}

func TestPollMonitorFirstReadFails(t *testing.T) {
	if _, err := newPollMonitor(func() (string, error) { return "", errors.New("boom") }, time.Second,
		zaptest.NewLogger(t)); err == nil {
		t.Fatal("no error")
	}
}
