package l7

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		authority string
		want      Target
		wantErr   bool
	}{
		{authority: "wiki.corp.example:443", want: Target{Host: "wiki.corp.example", Port: 443}},
		{authority: "10.1.2.3:22", want: Target{Host: "10.1.2.3", Port: 22}},
		{authority: "[fd00::1]:8080", want: Target{Host: "fd00::1", Port: 8080}},
		{authority: "wiki.corp.example", wantErr: true},
		{authority: ":443", wantErr: true},
		{authority: "host:0", wantErr: true},
		{authority: "host:65536", wantErr: true},
		{authority: "host:-1", wantErr: true},
		{authority: "fd00::1:80", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.authority, func(t *testing.T) {
			r := &http.Request{Host: tt.authority, Header: http.Header{HeaderApp: {"app-1"}}}
			got, err := ParseTarget(r)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseTarget(%q) = %+v, want error", tt.authority, got)
				}
				return
			}
			tt.want.AppID = "app-1"
			if err != nil || got != tt.want {
				t.Fatalf("ParseTarget(%q) = %+v, %v, want %+v", tt.authority, got, err, tt.want)
			}
			if a := got.Authority(); a != tt.authority {
				t.Errorf("Authority() = %q, want %q", a, tt.authority)
			}
		})
	}
}

// FuzzParseTarget: whatever a peer sends as :authority, parsing does not panic and a
// parsed target's authority parses back to the same target.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"a.b:1", "[::1]:443", "1.2.3.4:65535", ":", "[::1", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, authority string) {
		got, err := ParseTarget(&http.Request{Host: authority, Header: http.Header{}})
		if err != nil {
			return
		}
		again, err := ParseTarget(&http.Request{Host: got.Authority(), Header: http.Header{}})
		if err != nil || again != got {
			t.Fatalf("%q → %+v → %q → %+v, %v", authority, got, got.Authority(), again, err)
		}
	})
}

func TestRefusedError(t *testing.T) {
	var err error = fmt.Errorf("open: %w", &RefusedError{Status: 403, Reason: "not in group eng"})
	if !errors.Is(err, ErrRefused) {
		t.Error("errors.Is(err, ErrRefused) = false")
	}
	if want := "open: l7: stream refused: 403 Forbidden: not in group eng"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	if errors.Is(ErrNotConnected, ErrRefused) {
		t.Error("ErrNotConnected is a refusal")
	}
}

func TestSanitizeReason(t *testing.T) {
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'x'
	}
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"two\r\nlines\x00", "two  lines "},
		{string(long), string(long[:256])},
	}
	for _, tt := range tests {
		if got := sanitizeReason(tt.in); got != tt.want {
			t.Errorf("sanitizeReason(%.20q) = %.20q, want %.20q", tt.in, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := NewBackoff(100*time.Millisecond, time.Second)
	ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, c := range ceilings {
		c *= time.Millisecond
		if d := b.Next(); d < c/2 || d > c {
			t.Errorf("attempt %d: delay %v, want in [%v, %v]", i, d, c/2, c)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after reset: delay %v, want ≤ 100ms", d)
	}
	if d := NewBackoff(0, 0); d.min != defaultRetryMin || d.max != defaultRetryMax {
		t.Errorf("defaults = %v..%v", d.min, d.max)
	}
}

// TestBackoffDelay: an attempt refused at once is repeated after ½ s, then
// 1 s, then at most every 1.5 s (jittered); other failures, an unreachable
// network among them, back off exponentially; a failure that repeats is worth
// one warning.
func TestBackoffDelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := net.Dial("tcp", addr)
	if refused == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	b := NewBackoff(2*time.Second, time.Minute)
	for i, ceiling := range []time.Duration{500, 1000, 1500, 1500, 1500} {
		ceiling *= time.Millisecond
		if d := b.Delay(refused); d < ceiling/2 || d > ceiling {
			t.Fatalf("delay %d after %v: %v, want in [%v, %v]", i, refused, d, ceiling/2, ceiling)
		}
	}
	unreachable := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
	u := NewBackoff(500*time.Millisecond, 30*time.Second)
	var total time.Duration
	for range 10 {
		total += u.Delay(unreachable)
	}
	if total < 60*time.Second {
		t.Errorf("10 delays after %v add up to %v, want them grown towards 30 s", unreachable, total)
	}
	timeout := fmt.Errorf("dial PoP: %w", context.DeadlineExceeded)
	if d := b.Delay(timeout); d < time.Second || d > 2*time.Second {
		t.Errorf("first delay after a timeout: %v, want the backoff's first, in [1s, 2s]", d)
	}
	if d := b.Delay(timeout); d < 2*time.Second {
		t.Errorf("second delay after a timeout: %v, want it grown", d)
	}
	if b.Repeated(refused) || !b.Repeated(refused) || b.Repeated(timeout) {
		t.Error("Repeated: want false, true, then false for another error")
	}
	b.Reset()
	if b.Repeated(timeout) {
		t.Error("Repeated right after Reset")
	}
}

func TestOpenBadTarget(t *testing.T) {
	c := NewClient(ClientConfig{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, target := range []Target{{Port: 443}, {Host: "wiki.corp.example"}} {
		if _, err := c.Open(context.Background(), target); !errors.Is(err, ErrBadTarget) {
			t.Errorf("Open(%+v): %v, want ErrBadTarget", target, err)
		}
	}
}

// TestReconnectWhileDown: with no connection to replace, Reconnect makes no
// stream wait: Open fails at once, before and after Close.
func TestReconnectWhileDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the client stays down
	c := NewClient(ClientConfig{Addr: addr, RetryMin: time.Hour, RetryMax: time.Hour})
	c.Start()
	for _, when := range []string{"down", "closed"} {
		if when == "closed" {
			c.Close()
		}
		c.Reconnect("test")
		start := time.Now()
		_, err := c.Open(context.Background(), Target{Host: "a.test", Port: 1})
		if !errors.Is(err, ErrNotConnected) {
			t.Errorf("%s: Open: %v, want ErrNotConnected", when, err)
		}
		if took := time.Since(start); took > replaceWait/2 {
			t.Errorf("%s: Open took %v after a Reconnect, want at once", when, took)
		}
	}
}
