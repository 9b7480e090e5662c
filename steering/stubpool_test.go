package steering

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newPool(t *testing.T, prefix string, reserved ...string) *StubPool {
	t.Helper()
	cfg := StubPoolConfig{Prefix: netip.MustParsePrefix(prefix), TTL: 30 * time.Second, IdleTime: 10 * time.Minute}
	for _, r := range reserved {
		cfg.Reserved = append(cfg.Reserved, netip.MustParsePrefix(r))
	}
	p, err := NewStubPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStubPoolStable(t *testing.T) {
	changes := 0
	p, err := NewStubPool(StubPoolConfig{Prefix: DefaultStubRange, OnChange: func() { changes++ }})
	if err != nil {
		t.Fatal(err)
	}
	a1, err := p.Assign("wiki.corp.test", t0)
	if err != nil {
		t.Fatal(err)
	}
	if a1 != netip.MustParseAddr("100.64.0.1") {
		t.Fatalf("first address = %s", a1)
	}
	a2, _ := p.Assign("WIKI.corp.test.", t0.Add(time.Second))
	b, _ := p.Assign("b.corp.test", t0)
	if a2 != a1 || b == a1 || changes != 2 {
		t.Fatalf("a1=%s a2=%s b=%s changes=%d", a1, a2, b, changes)
	}
	if n, ok := p.Lookup(a1); !ok || n != "wiki.corp.test" {
		t.Fatalf("Lookup = %q %v", n, ok)
	}
	for _, a := range []string{"100.64.0.0", "100.64.9.9", "10.0.0.1", "::1"} {
		if _, ok := p.Lookup(netip.MustParseAddr(a)); ok {
			t.Errorf("Lookup(%s) found something", a)
		}
	}
	if n := testing.AllocsPerRun(100, func() { p.Lookup(a1) }); n != 0 {
		t.Errorf("Lookup allocates %v", n)
	}
	if _, err := p.Assign("bad name!", t0); err == nil {
		t.Error("invalid name accepted")
	}
}

func TestStubPoolNeverReserved(t *testing.T) {
	// A /28 has 16 addresses: first and last are never used, 4 are reserved.
	p := newPool(t, "100.64.0.0/28", "100.64.0.4/31", "100.64.0.8/32", "10.0.0.0/8", "100.64.0.14/32")
	seen := map[netip.Addr]bool{}
	for i := range 20 {
		a, err := p.Assign(fmt.Sprintf("n%d.test", i), t0)
		if i >= 10 {
			if !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("assignment %d: %v, %v; want exhaustion", i, a, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("assignment %d: %v", i, err)
		}
		switch a.String() {
		case "100.64.0.0", "100.64.0.15", "100.64.0.4", "100.64.0.5", "100.64.0.8", "100.64.0.14":
			t.Fatalf("assigned reserved address %s", a)
		}
		if seen[a] {
			t.Fatalf("assigned %s twice", a)
		}
		seen[a] = true
	}
}

func TestStubPoolRecycling(t *testing.T) {
	p := newPool(t, "100.64.0.0/30") // two usable addresses
	a, _ := p.Assign("a.test", t0)
	b, _ := p.Assign("b.test", t0)
	// Exhausted; nothing is old enough.
	if _, err := p.Assign("c.test", t0.Add(time.Minute)); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("want exhaustion, got %v", err)
	}
	// b keeps being used; a goes quiet. After the idle time only a may go.
	p.Touch(b, t0.Add(9*time.Minute))
	c, err := p.Assign("c.test", t0.Add(11*time.Minute))
	if err != nil || c != a {
		t.Fatalf("recycled %s, %v; want a's address %s", c, err, a)
	}
	if n, _ := p.Lookup(a); n != "c.test" {
		t.Fatalf("Lookup(a) = %q after recycling", n)
	}
	// An answer inside the TTL protects an address even when idle time passed.
	p.Assign("b.test", t0.Add(30*time.Minute-10*time.Second)) // re-answered 10s ago
	p.Touch(c, t0)
	if _, err := p.Assign("d.test", t0.Add(30*time.Minute)); err != nil {
		t.Fatalf("c should be recyclable: %v", err)
	}
	if n, _ := p.Lookup(b); n != "b.test" {
		t.Fatal("b was recycled inside its TTL")
	}
}

func TestStubPoolState(t *testing.T) {
	p := newPool(t, "100.64.0.0/24")
	var addrs []netip.Addr
	for i := range 5 {
		a, _ := p.Assign(fmt.Sprintf("n%d.corp.test", i), t0.Add(time.Duration(i)*time.Second))
		addrs = append(addrs, a)
	}
	p.Touch(addrs[2], t0.Add(time.Hour))
	state, err := p.MarshalState()
	if err != nil {
		t.Fatal(err)
	}

	// A restarted agent: same prefix, one address now reserved.
	q := newPool(t, "100.64.0.0/24", addrs[4].String()+"/32")
	if err := q.RestoreState(state); err != nil {
		t.Fatal(err)
	}
	es := q.Entries()
	if len(es) != 4 {
		t.Fatalf("restored %d entries: %+v", len(es), es)
	}
	for i, e := range es {
		if e.Addr != addrs[i] || e.FQDN != fmt.Sprintf("n%d.corp.test", i) || !e.LastAnswered.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("entry %d = %+v", i, e)
		}
	}
	if !es[2].LastUsed.Equal(t0.Add(time.Hour)) || !es[0].LastUsed.IsZero() {
		t.Fatalf("LastUsed not restored: %+v", es)
	}
	// Names keep their addresses; new names never take a restored one.
	if a, _ := q.Assign("n1.corp.test", t0); a != addrs[1] {
		t.Fatalf("n1 moved to %s", a)
	}
	if a, _ := q.Assign("new.corp.test", t0); a == addrs[0] || a == addrs[1] || a == addrs[2] || a == addrs[3] || a == addrs[4] {
		t.Fatalf("new name got a restored or reserved address %s", a)
	}

	// A pool on another prefix keeps nothing.
	r := newPool(t, "100.65.0.0/24")
	if err := r.RestoreState(state); err != nil || r.Len() != 0 {
		t.Fatalf("other prefix: %v, %d entries", err, r.Len())
	}
}

func TestStubPoolCorruptState(t *testing.T) {
	good := `{"version":1,"prefix":"100.64.0.0/24","entries":[{"fqdn":"a.test","addr":"100.64.0.1","last_answered":"2026-11-23T12:00:00Z","last_used":"0001-01-01T00:00:00Z"}]}`
	tests := []struct{ name, state, want string }{
		{"not json", "{", "stub state"},
		{"version", strings.Replace(good, `"version":1`, `"version":2`, 1), "unknown version"},
		{"unknown field", strings.Replace(good, `"version":1`, `"version":1,"x":1`, 1), "unknown field"},
		{"bad name", strings.Replace(good, "a.test", "A.test", 1), "invalid name"},
		{"bad addr", strings.Replace(good, "100.64.0.1", "100.64.0.300", 1), "stub state"},
		{"duplicate", strings.Replace(good, "]}", `,{"fqdn":"b.test","addr":"100.64.0.1"}]}`, 1), "duplicate"},
		{"missing addr", strings.Replace(good, `"addr":"100.64.0.1",`, "", 1), "missing address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, "100.64.0.0/24")
			p.Assign("keep.test", t0)
			err := p.RestoreState([]byte(tt.state))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("RestoreState error = %v, want %q", err, tt.want)
			}
			if n, ok := p.Lookup(netip.MustParseAddr("100.64.0.1")); !ok || n != "keep.test" {
				t.Fatal("a failed restore changed the pool")
			}
		})
	}
	p := newPool(t, "100.64.0.0/24")
	if err := p.RestoreState([]byte(good)); err != nil {
		t.Fatalf("good state: %v", err)
	}
}

func TestNewStubPoolErrors(t *testing.T) {
	for _, pfx := range []string{"100.64.0.0/31", "10.0.0.0/7", "fd00::/64"} {
		if _, err := NewStubPool(StubPoolConfig{Prefix: netip.MustParsePrefix(pfx)}); err == nil {
			t.Errorf("NewStubPool(%s) accepted", pfx)
		}
	}
	if _, err := NewStubPool(StubPoolConfig{}); err == nil {
		t.Error("zero prefix accepted")
	}
	p := newPool(t, "fd7a:115c:a1e0::/104")
	a, err := p.Assign("v6.test", t0)
	if err != nil || a != netip.MustParseAddr("fd7a:115c:a1e0::1") {
		t.Fatalf("IPv6 pool: %s %v", a, err)
	}
}

// TestStubPoolConcurrent runs lookups and touches against assignments; run it
// with -race.
func TestStubPoolConcurrent(t *testing.T) {
	p := newPool(t, "100.64.0.0/16")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				name := fmt.Sprintf("n%d.test", (i*7+w)%300)
				a, err := p.Assign(name, t0)
				if err != nil {
					t.Error(err)
					return
				}
				p.Touch(a, t0.Add(time.Duration(i)))
				if got, ok := p.Lookup(a); !ok || got != name {
					t.Errorf("Lookup(%s) = %q, want %q", a, got, name)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p.Len() != 300 {
		t.Fatalf("Len = %d, want 300", p.Len())
	}
}
