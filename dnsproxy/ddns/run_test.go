package ddns

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

func TestRun(t *testing.T) {
	s := startServer(t, testSecret)
	s.set(func(s *testServer) { s.refuse = dns.RcodeRefused })
	core, logs := observer.New(zap.DebugLevel)
	cfg := testConfig(s.addr)
	c, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	c.cfg.Refresh, c.retryMin = 20*time.Millisecond, time.Millisecond

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, addrs("100.96.0.5")) }()

	// Refused: logged with the rcode, retried.
	eventually(t, "two refusals logged", func() bool {
		return logs.FilterMessage("dynamic DNS registration failed").FilterFieldKey("retry_in").Len() >= 2
	})
	if e := logs.FilterMessage("dynamic DNS registration failed").All()[0].ContextMap()["error"]; e != "ddns: register laptop1.corp.test.: server answered REFUSED" {
		t.Fatalf("logged error %q", e)
	}
	if c.Registered() {
		t.Fatal("Registered while the server refuses")
	}
	s.set(func(s *testServer) { s.refuse = 0 })
	eventually(t, "registered", func() bool { return len(s.records(name, dns.TypeA)) == 1 })
	eventually(t, "Registered", c.Registered)

	// Refreshed: an administrator's deletion is undone.
	s.set(func(s *testServer) { delete(s.rrs, name) })
	eventually(t, "registered again by a refresh", func() bool { return len(s.records(name, dns.TypeA)) == 1 })
	eventually(t, "refresh logged", func() bool { return logs.FilterMessage("dynamic DNS name refreshed").Len() > 0 })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c.Registered() {
		t.Fatal("Registered after Run removed the name")
	}
	for _, typ := range []uint16{dns.TypeA, dns.TypeTXT} {
		if r := s.records(name, typ); len(r) != 0 {
			t.Fatalf("after Run ended: %s %v", dns.TypeToString[typ], r)
		}
	}
	if logs.FilterMessage("dynamic DNS name removed").Len() != 1 {
		t.Fatal("removal not logged")
	}
	for _, e := range logs.All() {
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && s == testSecret {
				t.Fatalf("secret logged in %q", e.Message)
			}
		}
	}
}

// TestRunServerNeverAnswered: a stop does not wait on a server that never
// answered.
func TestRunServerNeverAnswered(t *testing.T) {
	c := newTestClient(t, testConfig("127.0.0.1:9"))
	c.retryMin = time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Run(ctx, addrs("100.96.0.5")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Run took %v to stop", d)
	}
}

func TestRunRetryBounds(t *testing.T) {
	cfg := testConfig("127.0.0.1:9")
	cfg.Refresh = 30 * time.Second
	c := newTestClient(t, cfg)
	if c.retryMin != time.Second || c.retryMax != 30*time.Second {
		t.Fatalf("retry %v..%v, want 1s..30s (capped by the refresh)", c.retryMin, c.retryMax)
	}
}

func TestJitterStaysInRange(t *testing.T) {
	const d = 4 * time.Second
	seen := map[bool]bool{}
	for range 1000 {
		j := jitter(d)
		if j < 3*time.Second || j > d {
			t.Fatalf("jitter(%v) = %v, want within [3s, 4s]", d, j)
		}
		seen[j == d] = true
	}
	if !seen[false] {
		t.Fatal("jitter never shortened the wait")
	}
}
