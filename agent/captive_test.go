package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestCaptiveGate: behind a portal the PoP is dialled 5 s after the portal
// was found, then after 10, 20, 40 and every 60 s; once it opens, at once.
func TestCaptiveGate(t *testing.T) {
	opened := 0
	d := newCaptiveDetector(nil, zap.NewNop(), func() { opened++ })
	t0 := time.Unix(1000, 0)
	if err := d.allowDial(t0); err != nil {
		t.Fatalf("no portal: %v", err)
	}
	d.set(captiveState{captive: true, reason: "302", checked: t0})
	var allowed []time.Duration
	for s := 0; s <= 200; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		switch err := d.allowDial(now); {
		case err == nil:
			allowed = append(allowed, now.Sub(t0))
		case !errors.Is(err, errCaptive):
			t.Fatal(err)
		}
	}
	want := []time.Duration{5, 15, 35, 75, 135, 195}
	if len(allowed) != len(want) {
		t.Fatalf("dials let through at %v, want %v s", allowed, want)
	}
	for i := range want {
		if allowed[i] != want[i]*time.Second {
			t.Fatalf("dials let through at %v, want %v s", allowed, want)
		}
	}
	d.set(captiveState{reason: "204", checked: t0.Add(201 * time.Second)})
	if err := d.allowDial(t0.Add(201 * time.Second)); err != nil || opened != 1 {
		t.Fatalf("portal opened: dial %v, opened called %d times", err, opened)
	}
	d.set(captiveState{reason: "204 again"})
	if opened != 1 {
		t.Fatal("opened called without a portal going away")
	}
}

// TestCaptiveRun drives the loop with a fake probe and tunnel: it checks
// while the tunnel is down, finds the portal, keeps checking every
// captivePoll, reports the opening, and stops checking while the tunnel is
// up.
func TestCaptiveRun(t *testing.T) {
	var (
		mu      sync.Mutex
		portal  = true
		probes  atomic.Int32
		up      atomic.Bool
		openedC = make(chan struct{}, 1)
	)
	probe := func(context.Context, string) (bool, string) {
		probes.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return portal, "fake"
	}
	d := newCaptiveDetector(probe, zap.NewNop(), func() { openedC <- struct{}{} })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.run(ctx, func() string { return "http://check.test/" }, up.Load) })
	defer func() { cancel(); wg.Wait() }()

	waitFor(t, "the portal found", d.captive)
	n := probes.Load()
	waitFor(t, "the next check behind the portal", func() bool { return probes.Load() > n })
	mu.Lock()
	portal = false
	mu.Unlock()
	select {
	case <-openedC:
	case <-time.After(2*captivePoll + time.Second):
		t.Fatal("the portal's opening was not reported")
	}
	if d.captive() {
		t.Fatal("still captive")
	}
	up.Store(true)
	d.recheck()
	time.Sleep(100 * time.Millisecond)
	n = probes.Load()
	d.recheck()
	time.Sleep(100 * time.Millisecond)
	if probes.Load() != n {
		t.Error("checked with the tunnel up")
	}
}

func TestCaptiveProbe(t *testing.T) {
	var mode atomic.Value
	mode.Store("portal")
	var followed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/login":
			followed.Store(true)
		case mode.Load() == "portal":
			http.Redirect(w, r, "http://portal.hotel.test/login", http.StatusFound)
		case mode.Load() == "page":
			w.Write([]byte("welcome to the hotel"))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	r := startResolver(t, map[string]string{"check.public.test": "127.0.0.1"})
	n := netProber{upstreams: func() []netip.AddrPort { return []netip.AddrPort{r.addr} }, timeout: time.Second}
	check := "http://check.public.test:" + port + "/generate_204"
	tests := []struct {
		mode, url string
		captive   bool
		why       string
	}{
		{"portal", check, true, "captive check " + check + " (127.0.0.1) answered 302 Found to http://portal.hotel.test/login"},
		{"page", check, true, "captive check " + check + " (127.0.0.1) answered 200 OK"},
		{"open", check, false, "captive check " + check + " (127.0.0.1) answered 204"},
		{"open", "http://nx.public.test/generate_204", false, "captive check http://nx.public.test/generate_204: the name has no address"},
		{"open", "http://127.0.0.1:9/generate_204", false, "captive check http://127.0.0.1:9/generate_204 (127.0.0.1): "},
	}
	for _, tt := range tests {
		t.Run(tt.mode+" "+tt.url, func(t *testing.T) {
			mode.Store(tt.mode)
			captive, why := n.captive(context.Background(), tt.url)
			if captive != tt.captive || !strings.HasPrefix(why, tt.why) {
				t.Errorf("captive = %v, %q; want %v, %q…", captive, why, tt.captive, tt.why)
			}
		})
	}
	if followed.Load() {
		t.Error("the portal's redirect was followed")
	}
}
