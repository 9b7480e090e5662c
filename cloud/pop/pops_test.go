package pop

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ztagent/ztagent/internal/delayrelay"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// extraPoP runs a second PoP of the lab's tenant on loopback until the
// returned stop or the test's end.
func extraPoP(t *testing.T, l *lab) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{TLS: l.ca.serverTLS(t), Authorize: l.authorize, Log: l.log})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		srv.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func popInUse(c *l7.Client) string {
	for _, p := range c.PoPs() {
		if p.InUse {
			return p.Addr
		}
	}
	return ""
}

// TestPoPSelection: of two PoPs the client connects to the nearer (the
// lab's PoP is 20 ms away each way behind a delay relay, the other is
// local), measures both, and when the near one goes away fails over to the
// far one, through which flows then work.
func TestPoPSelection(t *testing.T) {
	l := newLab(t, labOptions{noClient: true})
	relay, err := delayrelay.Listen("127.0.0.1:0", l.popAddr, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	far := relay.Addr().String()
	near, stopNear := extraPoP(t, l)

	c := l7.NewClient(l7.ClientConfig{
		PoPs: []l7.PoP{{Addr: far}, {Addr: near}},
		TLS:  l.ca.peerTLS(t, "device-1"), Log: l.log,
		RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	})
	c.Start()
	t.Cleanup(func() { c.Close() })
	eventually(t, "connected to the near PoP, the far one measured", func() bool {
		ps := c.PoPs()
		return c.Connected() && ps[0].Connect > 0
	})
	ps := c.PoPs()
	if got := popInUse(c); got != near || c.Status().Addr != near {
		t.Fatalf("in use %q (status %q), want the near PoP %s; PoPs %+v", got, c.Status().Addr, near, ps)
	}
	if ps[0].Connect < 40*time.Millisecond || ps[1].Connect >= ps[0].Connect {
		t.Errorf("connect times: far %v, near %v; want far >= 40ms > near", ps[0].Connect, ps[1].Connect)
	}

	stopNear()
	start := time.Now()
	eventually(t, "failed over to the far PoP", func() bool { return c.Connected() && popInUse(c) == far })
	t.Logf("failed over in %v", time.Since(start))
	if ps := c.PoPs(); ps[1].LastError == "" {
		t.Errorf("the near PoP, gone, has no error: %+v", ps[1])
	}
	if _, err := c.Probe(context.Background(), appEcho, "pub-1"); err != nil {
		t.Fatalf("probe through the far PoP: %v", err)
	}
	port := startServer(t, echo)
	if err := roundTrip(c, l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho}, 4096, 1); err != nil {
		t.Fatalf("flow through the far PoP: %v", err)
	}
}
