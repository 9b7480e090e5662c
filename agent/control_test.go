package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/agenttest"
	"github.com/ztagent/ztagent/platform"
)

// ctlConn is a raw client connection to the control socket, speaking
// HTTP/1.1 by hand so that tests choose when (and whether) to send.
type ctlConn struct {
	net.Conn
	br *bufio.Reader
}

func dialCtl(t *testing.T, path string) *ctlConn {
	t.Helper()
	c, err := platform.DialControl(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &ctlConn{Conn: c, br: bufio.NewReader(c)}
}

// status sends one keep-alive status call and returns the answer's code and
// body.
func (c *ctlConn) status() (int, string, error) { return c.get("/v1/status") }

// get sends one keep-alive GET and returns the answer's code and body.
func (c *ctlConn) get(path string) (int, string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: ztagent\r\n\r\n"); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// closedWithin reports whether the agent closes c within d.
func (c *ctlConn) closedWithin(d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestControlTimeouts: the control API closes idle and slow clients: a
// keep-alive connection with no next request, one that never sends a byte,
// one whose headers or body trickle in.
func TestControlTimeouts(t *testing.T) {
	a := newFakeAgent(t, "", func(c *Config) {
		c.Control = ControlLimits{IdleTimeout: 200 * time.Millisecond, HeaderTimeout: 200 * time.Millisecond,
			ReadTimeout: 300 * time.Millisecond}
	})
	a.start(t)
	sock := a.cfg.SocketPath
	const within = 3 * time.Second

	idle := dialCtl(t, sock)
	if code, body, err := idle.status(); err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %s %v", code, body, err)
	}
	if !idle.closedWithin(within) {
		t.Error("an idle keep-alive connection is still open after the idle timeout")
	}
	if !dialCtl(t, sock).closedWithin(within) {
		t.Error("a connection that never sent a byte is still open after the header timeout")
	}
	slowHeader := dialCtl(t, sock)
	io.WriteString(slowHeader, "GET /v1/status HTTP/1.1\r\nHost: zta")
	if !slowHeader.closedWithin(within) {
		t.Error("a connection whose headers never end is still open after the header timeout")
	}
	slowBody := dialCtl(t, sock)
	io.WriteString(slowBody, "POST /v1/match HTTP/1.1\r\nHost: ztagent\r\nContent-Length: 100\r\n\r\n{\"host\":")
	start := time.Now()
	slowBody.SetReadDeadline(start.Add(within))
	resp, err := http.ReadResponse(slowBody.br, nil)
	if err == nil {
		resp.Body.Close()
	}
	if err == nil && resp.StatusCode == http.StatusOK || time.Since(start) > within {
		t.Errorf("a body that never ends: answered %v (%v) after %v", resp, err, time.Since(start))
	}
}

// TestControlConnectionCaps: connections past the caller's cap are closed at
// once with a 503 that says why, and the slot is given back when a held
// connection closes. The test's own user is root (an administrator, bounded
// by the total) or an unprivileged one (bounded per user).
func TestControlConnectionCaps(t *testing.T) {
	lim := platform.ControlLimits{PerUser: 2, Total: 5, Reserved: 2}
	a := newFakeAgent(t, "", func(c *Config) {
		c.Control = ControlLimits{Conns: lim, HeaderTimeout: time.Minute, IdleTimeout: time.Minute}
	})
	a.start(t)
	held := lim.PerUser
	if os.Geteuid() == 0 {
		held = lim.Total
	}
	var conns []*ctlConn
	for range held {
		c := dialCtl(t, a.cfg.SocketPath)
		if code, body, err := c.status(); err != nil || code != http.StatusOK {
			t.Fatalf("connection %d of %d: %d %s %v", len(conns)+1, held, code, body, err)
		}
		conns = append(conns, c)
	}
	over := dialCtl(t, a.cfg.SocketPath)
	code, body, err := over.status()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "busy") {
		t.Fatalf("connection %d over a cap of %d: answered %d %.80q (%v), want 503 busy", held+1, held, code, body, err)
	}
	if !over.closedWithin(time.Second) {
		t.Fatal("a refused connection was left open")
	}
	if _, err := a.ctl.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("ztdiag status over the cap: %v, want the agent's busy answer", err)
	}
	conns[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := a.ctl.Status(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection's slot was never given back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestControlLongCalls: the calls that wait by design (a sync waiting for a
// slow tenant, an enrollment waiting for a sign-in) outlive the read and
// write timeouts that bound every other call.
func TestControlLongCalls(t *testing.T) {
	const timeout, slow = 200 * time.Millisecond, 800 * time.Millisecond
	a := newFakeAgent(t, "", func(c *Config) {
		c.Control = ControlLimits{ReadTimeout: timeout, WriteTimeout: timeout}
	})
	a.start(t)
	wait := func(ctx context.Context) error {
		select {
		case <-time.After(slow):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.cfgs.SetHook(wait)
	if _, err := a.ctl.Sync(context.Background()); err != nil {
		t.Fatalf("a sync slower than the timeouts: %v", err)
	}
	a.cfgs.SetHook(nil)
	a.enr.SetHook(func(ctx context.Context, _ agenttest.Call) error { return wait(ctx) })
	if _, err := a.ctl.Reenroll(context.Background(), nil); err != nil {
		t.Fatalf("an enrollment slower than the timeouts: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Log("SKIPPED LOUDLY: the profile needs root")
		return
	}
	if code, body, err := dialCtl(t, a.cfg.SocketPath).get("/debug/pprof/profile?seconds=1"); code != http.StatusOK || len(body) == 0 {
		t.Fatalf("a profile longer than the timeouts: %d, %d bytes, %v", code, len(body), err)
	}
}
