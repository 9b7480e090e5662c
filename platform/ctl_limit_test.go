package platform

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

var (
	root   = Cred{UID: 0, PID: 1, Admin: true}
	alice  = Cred{UID: 1000, PID: 2}
	bob    = Cred{UID: 1001, PID: 3}
	nobody = Cred{UID: 65534, PID: 4}
)

// TestConnCounter: per-user caps, the total, the administrators' share and
// the descriptor reserve, with made-up peers.
func TestConnCounter(t *testing.T) {
	type step struct {
		admit, release Cred
		open, limit    int // descriptors
		refused        bool
	}
	admit := func(c Cred) step { return step{admit: c} }
	refuse := func(c Cred) step { return step{admit: c, refused: true} }
	release := func(c Cred) step { return step{release: c} }
	lim := ControlLimits{PerUser: 2, Total: 5, Reserved: 2, FDReserve: 10}
	tests := []struct {
		name  string
		steps []step
	}{
		{"per user", []step{admit(alice), admit(alice), refuse(alice), admit(bob), release(alice), admit(alice), refuse(alice)}},
		{"unprivileged users share total less reserved", []step{
			admit(alice), admit(alice), admit(bob), refuse(nobody), admit(root), admit(root), refuse(root),
		}},
		{"administrators may take every slot", []step{
			admit(root), admit(root), admit(root), admit(root), admit(root), refuse(root), refuse(alice),
			release(root), admit(alice), refuse(root), refuse(bob),
		}},
		{"unknown peers are one user", []step{
			admit(Cred{UID: -1}), admit(Cred{UID: -1}), refuse(Cred{UID: -1}),
		}},
		{"descriptor reserve", []step{
			{admit: alice, open: 90, limit: 100},
			{admit: alice, open: 91, limit: 100, refused: true},
			{admit: root, open: 95, limit: 100},
			{admit: root, open: 96, limit: 100, refused: true},
			{admit: bob, open: 10_000, limit: 0}, // no known limit
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newConnCounter(lim.withDefaults(0))
			for i, s := range tt.steps {
				if s.release != (Cred{}) {
					k.release(s.release)
					continue
				}
				err := k.admit(s.admit, s.open, s.limit)
				if s.refused != (err != nil) || err != nil && !errors.Is(err, ErrControlBusy) {
					t.Fatalf("step %d: admit uid %d: %v, want refused=%v", i, s.admit.UID, err, s.refused)
				}
			}
		})
	}
}

func TestControlLimitsDefaults(t *testing.T) {
	for _, tt := range []struct {
		in        ControlLimits
		fileLimit int
		want      ControlLimits
	}{
		{ControlLimits{}, 20000, ControlLimits{PerUser: 16, Total: 64, Reserved: 16, FDReserve: 2000}},
		{ControlLimits{}, 256, ControlLimits{PerUser: 16, Total: 64, Reserved: 16, FDReserve: 64}},
		{ControlLimits{}, 1 << 20, ControlLimits{PerUser: 16, Total: 64, Reserved: 16, FDReserve: 2048}},
		{ControlLimits{Total: 4, FDReserve: -1}, 0, ControlLimits{PerUser: 16, Total: 4, Reserved: 2, FDReserve: -1}},
		{ControlLimits{Total: 2, Reserved: 5}, 0, ControlLimits{PerUser: 16, Total: 2, Reserved: 1, FDReserve: 64}},
	} {
		if got := tt.in.withDefaults(tt.fileLimit); got != tt.want {
			t.Errorf("%+v with a limit of %d: %+v, want %+v", tt.in, tt.fileLimit, got, tt.want)
		}
	}
}

// TestLimitControl: a connection over its user's cap is refused at once
// (refuse is told why, the connection is closed), the others come out of
// Accept with their peer's credentials, and closing one gives its slot back.
func TestLimitControl(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(shortDir(t), "ctl.sock")
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var refusals []error
	ln := LimitControl(inner, ControlLimits{PerUser: 1, Total: 4, Reserved: 1}, func(c net.Conn, why error) {
		mu.Lock()
		refusals = append(refusals, why)
		mu.Unlock()
		io.WriteString(c, "busy\n")
	}, zaptest.NewLogger(t)).(*controlListener)
	defer ln.Close()
	peers := make(chan Cred, 8)
	ln.cred = func(net.Conn) (Cred, error) { return <-peers, nil }

	accept := func(want Cred) *ControlConn {
		t.Helper()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		cc := c.(*ControlConn)
		if cc.Cred != want {
			t.Fatalf("accepted %+v, want %+v", cc.Cred, want)
		}
		return cc
	}
	dial := func(as Cred) net.Conn {
		t.Helper()
		peers <- as
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	dial(alice)
	first := accept(alice)
	over := dial(alice) // refused inside the next Accept, which returns bob's
	dial(bob)
	accept(bob)
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(over); err != nil || string(b) != "busy\n" {
		t.Fatalf("the refused client read %q, %v; want the refusal, then the end", b, err)
	}
	mu.Lock()
	if len(refusals) != 1 || !errors.Is(refusals[0], ErrControlBusy) {
		t.Fatalf("refusals %v, want one ErrControlBusy", refusals)
	}
	mu.Unlock()

	first.Close()
	first.Close() // a second Close gives nothing back twice
	dial(alice)
	accept(alice)
	dial(alice)
	dial(root)
	accept(root) // alice's second was refused again
	if ln.k.all != 3 || ln.k.unpriv != 2 {
		t.Fatalf("counted %d connections, %d unprivileged; want 3 and 2", ln.k.all, ln.k.unpriv)
	}
}

// TestFDGauge: the accepted descriptor's number is used as is while it is
// below half the limit; past it, the descriptors are counted, at most every
// fdCountEvery, and a count that fails for want of descriptors means full.
func TestFDGauge(t *testing.T) {
	counts := 0
	var countErr error
	g := &fdGauge{limit: 1000, count: func() (int, error) { counts++; return 700, countErr }}
	if open, limit := g.usage(10); open != 11 || limit != 1000 || counts != 0 {
		t.Fatalf("low descriptor: open %d limit %d after %d counts", open, limit, counts)
	}
	if open, _ := g.usage(600); open != 700 || counts != 1 {
		t.Fatalf("past half: open %d after %d counts, want 700 after 1", open, counts)
	}
	if open, _ := g.usage(800); open != 801 || counts != 1 {
		t.Fatalf("soon after: open %d after %d counts, want 801 (its number) after 1", open, counts)
	}
	g.countedAt = time.Time{}
	countErr = syscall.EMFILE
	if open, _ := g.usage(600); open != 1000 {
		t.Fatalf("count failed with EMFILE: open %d, want the limit", open)
	}
	if open, limit := (&fdGauge{}).usage(5000); open != 0 || limit != 0 {
		t.Fatalf("no known limit: %d of %d", open, limit)
	}
}

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ztp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
