package pop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// startUDPEcho runs a loopback UDP echo server and returns its port.
func startUDPEcho(t testing.TB) uint16 {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], addr)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

func openUDP(t *testing.T, l *lab, target l7.Target) *l7.DatagramConn {
	t.Helper()
	c, err := l.client.OpenUDP(context.Background(), target)
	if err != nil {
		t.Fatalf("OpenUDP(%v): %v", target, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestUDPEcho sends datagrams of every size through client → PoP → publisher
// → a UDP echo server and back: each comes back whole and alone.
func TestUDPEcho(t *testing.T) {
	l := newLab(t, labOptions{})
	port := startUDPEcho(t)
	c := openUDP(t, l, l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho})
	buf := make([]byte, l7.MaxDatagram)
	for _, size := range []int{1, 0, 1400, 9000, 65000} {
		p := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], p) {
			t.Fatalf("%d-byte datagram echoed as %d bytes, %v", size, n, err)
		}
	}
	// A burst, read after it was sent: boundaries and order hold (loopback
	// loses nothing at this rate).
	const burst = 200
	for i := range burst {
		if _, err := c.Write(bytes.Repeat([]byte{byte(i)}, 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range burst {
		n, err := c.Read(buf)
		if err != nil || n != 100+i || buf[0] != byte(i) {
			t.Fatalf("burst datagram %d: %d bytes starting %d, %v", i, n, buf[0], err)
		}
	}
	if got := l.client.Status().Streams; got != 1 {
		t.Errorf("streams = %d, want 1", got)
	}
	c.Close()
	eventually(t, "stream closed", func() bool { return l.client.Status().Streams == 0 })
}

func TestUDPRefused(t *testing.T) {
	l := newLab(t, labOptions{})
	port := startUDPEcho(t)
	tests := []struct {
		name   string
		target l7.Target
		status int
		reason string
	}{
		{"policy denies", l7.Target{Host: "echo.corp.test", Port: port, AppID: appDenied}, http.StatusForbidden, "not allowed"},
		{"UDP port not in the app", l7.Target{Host: "echo.corp.test", Port: port, AppID: appTCPOnly}, http.StatusForbidden, "udp port is not part of app"},
		{"no publisher online", l7.Target{Host: "echo.corp.test", Port: port, AppID: appOffline}, http.StatusServiceUnavailable, "is online"},
		{"unknown host", l7.Target{Host: "nope.corp.test", Port: port, AppID: appEcho}, http.StatusBadGateway, "no such host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := l.client.OpenUDP(context.Background(), tt.target)
			if err == nil {
				c.Close()
				t.Fatal("OpenUDP succeeded, want a refusal")
			}
			var re *l7.RefusedError
			if !errors.As(err, &re) || re.Status != tt.status || !strings.Contains(re.Reason, tt.reason) {
				t.Fatalf("OpenUDP: %v, want %d containing %q", err, tt.status, tt.reason)
			}
		})
	}
	// The same app admits TCP: the policy saw the protocol.
	c, err := l.client.Open(context.Background(), l7.Target{Host: "echo.corp.test", Port: startServer(t, echo), AppID: appTCPOnly})
	if err != nil {
		t.Fatalf("TCP to the TCP-only app: %v", err)
	}
	c.Close()
}

// TestUDPIdle: a flow the publisher sees idle is ended; the client reads the
// end, and an active flow is kept.
func TestUDPIdle(t *testing.T) {
	const idle = 300 * time.Millisecond
	l := newLab(t, labOptions{pubUDPIdle: idle})
	port := startUDPEcho(t)
	c := openUDP(t, l, l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho})
	buf := make([]byte, 100)
	start := time.Now()
	for time.Since(start) < 3*idle { // active for three idle periods
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ping" {
			t.Fatalf("active flow: read %q, %v", buf[:n], err)
		}
		time.Sleep(idle / 4)
	}
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("idle flow: Read = %v, want io.EOF", err)
	}
	if waited := time.Since(start); waited < 3*idle {
		t.Errorf("flow ended after %v", waited)
	}
}

// TestUDPClientReset: the client's Close resets the flow through the PoP to
// the publisher, whose socket and goroutines go (goleak checks at the end).
func TestUDPClientReset(t *testing.T) {
	l := newLab(t, labOptions{})
	port := startUDPEcho(t)
	for range 20 {
		c := openUDP(t, l, l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho})
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	eventually(t, "streams closed", func() bool { return l.client.Status().Streams == 0 })
}
