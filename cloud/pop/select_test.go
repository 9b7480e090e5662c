package pop

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// haLab is a lab whose app appHA is served by pub-1 and pub-2, whose resolvers
// give echo.corp.test different loopback addresses (127.0.0.1 and 127.0.0.2),
// so that a DNS answer and the local address a target sees name the
// publisher that carried it. It returns the target's port; the target
// answers every connection with the address it was reached at.
func haLab(t *testing.T) (l *lab, port uint16, stop2 func()) {
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.2 on the loopback interface")
	}
	l = newLab(t, labOptions{})
	l.pubDNS = map[string]string{"pub-2": startDNS(t, map[string]string{"echo.corp.test.": "127.0.0.2"})}
	stop2 = l.startPublisher("pub-2", 0)
	eventually(t, "pub-2 online", func() bool { return slices.Contains(l.pop.Online(), "pub-2") })
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.LocalAddr().String())
			io.WriteString(c, host)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return l, uint16(ln.Addr().(*net.TCPAddr).Port), stop2
}

// servedBy opens a flow to echo.corp.test through appHA and returns the
// address the publisher connected to (127.0.0.1 for pub-1, .2 for pub-2).
func servedBy(t *testing.T, l *lab, port uint16) string {
	t.Helper()
	c, err := l.client.Open(context.Background(), l7.Target{Host: "echo.corp.test", Port: port, AppID: appHA})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// resolvedBy resolves echo.corp.test through appHA and returns the address
// the publisher's resolver gave.
func resolvedBy(t *testing.T, l *lab) string {
	t.Helper()
	m, err := resolve(t, l, appHA, packQuery(t, "echo.corp.test.", dns.TypeA, 7))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Answer) != 1 {
		t.Fatalf("answer %v", m.Answer)
	}
	return m.Answer[0].(*dns.A).A.String()
}

func syncSelection(t *testing.T, l *lab, sel l7.Selection) *l7.SelectionSync {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ss, err := l.client.SyncSelection(ctx, sel, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ss.Close)
	return ss
}

// TestSelection: with a selection, every stream and DNS query of the app goes
// to the first selected publisher; when it goes offline the PoP says the
// selection is stale and falls back to the other publisher.
func TestSelection(t *testing.T) {
	l, port, stop2 := haLab(t)
	for _, pub := range []string{"pub-1", "pub-2"} {
		if _, err := l.client.Probe(context.Background(), appHA, pub); err != nil {
			t.Fatalf("probe %s: %v", pub, err)
		}
	}
	ss := syncSelection(t, l, l7.Selection{appHA: {"pub-2", "pub-1"}})
	for range 4 {
		if got := servedBy(t, l, port); got != "127.0.0.2" {
			t.Fatalf("flow served at %s, want 127.0.0.2 (pub-2)", got)
		}
		if got := resolvedBy(t, l); got != "127.0.0.2" {
			t.Fatalf("DNS answered %s, want 127.0.0.2 (pub-2)", got)
		}
	}
	// Another selection replaces it.
	ss.Close()
	ss = syncSelection(t, l, l7.Selection{appHA: {"pub-1"}})
	if got := servedBy(t, l, port); got != "127.0.0.1" {
		t.Fatalf("flow served at %s, want 127.0.0.1 (pub-1)", got)
	}
	ss.Close()
	ss = syncSelection(t, l, l7.Selection{appHA: {"pub-2"}})

	// pub-2 goes: the stream says stale, and pub-1 takes the flows.
	stop2()
	select {
	case <-ss.Stale():
	case <-time.After(10 * time.Second):
		t.Fatal("no stale notice after pub-2 went offline")
	}
	if !strings.Contains(ss.Reason(), "pub-2") {
		t.Errorf("stale reason %q does not name pub-2", ss.Reason())
	}
	if got := servedBy(t, l, port); got != "127.0.0.1" {
		t.Fatalf("after pub-2 left, flow served at %s, want 127.0.0.1 (pub-1)", got)
	}
	if got := resolvedBy(t, l); got != "127.0.0.1" {
		t.Fatalf("after pub-2 left, DNS answered %s, want 127.0.0.1 (pub-1)", got)
	}
}

// TestSelectionOutsidePolicy: a selected publisher the policy does not allow
// for the app is never used.
func TestSelectionOutsidePolicy(t *testing.T) {
	l, _, _ := haLab(t)
	syncSelection(t, l, l7.Selection{appEcho: {"pub-2"}})
	for range 3 {
		if got := resolvedForEcho(t, l); got != "127.0.0.1" {
			t.Fatalf("DNS for app echo answered %s by pub-2, which does not serve it", got)
		}
	}
}

func resolvedForEcho(t *testing.T, l *lab) string {
	m, err := resolve(t, l, appEcho, packQuery(t, "echo.corp.test.", dns.TypeA, 7))
	if err != nil {
		t.Fatal(err)
	}
	return m.Answer[0].(*dns.A).A.String()
}

// TestProbe: a probe measures through the PoP to an online publisher of an
// app the device may use; anything else is refused with the usual statuses.
func TestProbe(t *testing.T) {
	l := newLab(t, labOptions{})
	rtt, err := l.client.Probe(context.Background(), appEcho, "pub-1")
	if err != nil || rtt <= 0 {
		t.Fatalf("probe = %v, %v", rtt, err)
	}
	for _, tc := range []struct {
		name, app, pub string
		status         int
	}{
		{"not a publisher of the app", appEcho, "pub-2", http.StatusForbidden},
		{"app denied", appDenied, "pub-1", http.StatusForbidden},
		{"publisher offline", appOffline, "pub-offline", http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.client.Probe(context.Background(), tc.app, tc.pub)
			var re *l7.RefusedError
			if !errors.As(err, &re) || re.Status != tc.status {
				t.Fatalf("probe = %v, want status %d", err, tc.status)
			}
		})
	}
	if n := l.pop.ProbeFailures(); n != 0 {
		t.Errorf("ProbeFailures = %d, want 0", n)
	}
}

// TestProbeBadPublisher: a publisher that answers a probe with garbage (a
// status other than 204, a refusal from a publisher that predates probes) or
// never, costs the device at most l7.ProbeTimeout, is refused (502, 504) and
// counted.
func TestProbeBadPublisher(t *testing.T) {
	l := newLab(t, labOptions{})
	l.extraApps = map[string][]string{"garbage-status": {"pub-2"}, "old-publisher": {"pub-2"}, "silent": {"pub-2"}}
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	l.fakePublisher("pub-2", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get(l7.HeaderApp) {
		case "garbage-status":
			w.WriteHeader(http.StatusOK)
		case "old-publisher":
			l7.Refuse(w, http.StatusMethodNotAllowed, "unsupported request GET")
		default:
			<-block
		}
	})
	for _, tc := range []struct {
		app    string
		status int
	}{{"garbage-status", http.StatusBadGateway}, {"old-publisher", http.StatusBadGateway}, {"silent", http.StatusGatewayTimeout}} {
		t.Run(tc.app, func(t *testing.T) {
			start := time.Now()
			_, err := l.client.Probe(context.Background(), tc.app, "pub-2")
			var re *l7.RefusedError
			if !errors.As(err, &re) || re.Status != tc.status {
				t.Fatalf("probe = %v, want status %d", err, tc.status)
			}
			if took := time.Since(start); took > l7.ProbeTimeout+time.Second {
				t.Errorf("probe took %v", took)
			}
		})
	}
	if n := l.pop.ProbeFailures(); n != 3 {
		t.Errorf("ProbeFailures = %d, want 3", n)
	}
}

// fakePublisher connects to the PoP as publisher name and serves its streams
// with h until the test ends.
func (l *lab) fakePublisher(name string, h http.HandlerFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := l7.DialTLS(ctx, nil, l.popAddr, l7.ClientTLS(l.ca.peerTLS(l.t, name), l.popAddr, l7.ALPNPublisher))
	if err != nil {
		l.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		new(l7.Server).ServeConn(ctx, conn, l.log, h)
	}()
	l.t.Cleanup(func() { cancel(); conn.Close(); <-done })
	eventually(l.t, name+" online", func() bool { return slices.Contains(l.pop.Online(), name) })
}
