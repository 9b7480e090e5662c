package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cloud/publisher"
	"github.com/ztagent/ztagent/internal/delayrelay"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// selectTenantYAML is tenantYAML with app web served by two publishers, and
// before it an app "closed" served by pub1 that alice is steered to but the
// policy denies her (so pub1 must be probed through web).
var selectTenantYAML = strings.Replace(strings.NewReplacer(
	"publishers:\n  - name: pub1\n    token: test-publisher-token-0123456789\n",
	"publishers:\n  - name: pub1\n    token: test-publisher-token-0123456789\n  - name: pub2\n    token: test-publisher-token-abcdefghij\n",
	"apps:\n  - id: web\n    hosts: [web.corp.test]\n    tcp: \"80\"\n    publishers: [pub1]\n",
	"apps:\n  - id: closed\n    hosts: [closed.corp.test]\n    tcp: \"80\"\n    publishers: [pub1]\n"+
		"  - id: web\n    hosts: [web.corp.test]\n    tcp: \"80\"\n    publishers: [pub1, pub2]\n",
).Replace(tenantYAML), "apps: [web, net, echo]", "apps: [closed, web, net, echo]", 1)

// runPublisher connects publisher name of the cloud's tenant to addr (the PoP
// or a relay in front of it) until the returned stop or the test's end.
func runPublisher(t *testing.T, cloud *testCloud, name, addr string) (stop func()) {
	t.Helper()
	cert, err := cloud.ca.IssuePublisher(cloud.tenant.Name, name)
	if err != nil {
		t.Fatal(err)
	}
	pub := publisher.New(publisher.Config{
		Name: name, PoPAddr: addr,
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: cloud.ca.Pool(), ServerName: "pop.test"},
		Log:      zap.NewNop(),
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("publisher %s: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// publishersOf returns app's publishers as status shows them.
func publishersOf(st ctlapi.Status, app string) map[string]ctlapi.PublisherStatus {
	out := map[string]ctlapi.PublisherStatus{}
	for _, a := range st.Apps {
		if a.ID == app {
			for _, p := range a.Publishers {
				out[p.Name] = p
			}
		}
	}
	return out
}

// TestPublisherSelection: the agent measures both publishers of web through
// the PoP, selects the near one (pub2 is 30 ms away each way, behind a delay
// relay) and shows it in status; when the near one goes offline, the PoP's
// stale notice makes it measure again at once and select the far one.
func TestPublisherSelection(t *testing.T) {
	cloud := startCloudWith(t, selectTenantYAML)
	relay, err := delayrelay.Listen("127.0.0.1:0", cloud.popAddr, 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	stop1 := runPublisher(t, cloud, "pub1", cloud.popAddr)
	runPublisher(t, cloud, "pub2", relay.Addr().String())

	a := startTestAgent(t, cloud)

	st := waitStatus(t, a.Agent, "both publishers measured", func(st ctlapi.Status) bool {
		ps := publishersOf(st, "web")
		return ps["pub1"].RTT > 0 && ps["pub2"].RTT > 0
	})
	ps := publishersOf(st, "web")
	if !ps["pub1"].Selected || ps["pub2"].Selected {
		t.Fatalf("selection %+v: want pub1 only", ps)
	}
	if ps["pub2"].RTT < 60*time.Millisecond || ps["pub2"].Bucket != "50-100ms" {
		t.Errorf("pub2 measured %v (%s), want 60-100ms", ps["pub2"].RTT, ps["pub2"].Bucket)
	}
	if ps["pub1"].Bucket != "<5ms" {
		t.Errorf("pub1 measured %v (%s), want <5ms", ps["pub1"].RTT, ps["pub1"].Bucket)
	}
	if c := publishersOf(st, "closed")["pub1"]; c.RTT == 0 || !c.Selected || st.Selection.ProbeFailures != 0 {
		t.Errorf("pub1 of the denied app: %+v, %d probe failures; want it measured through web", c, st.Selection.ProbeFailures)
	}
	if st.Selection.Interval != "5m0s" || st.Selection.Probed.IsZero() {
		t.Errorf("selection status %+v", st.Selection)
	}

	stop1()
	start := time.Now()
	st = waitStatus(t, a.Agent, "pub2 selected after pub1 left", func(st ctlapi.Status) bool {
		return publishersOf(st, "web")["pub2"].Selected
	})
	t.Logf("pub2 selected %v after pub1 stopped", time.Since(start))
	if p1 := publishersOf(st, "web")["pub1"]; p1.Selected || p1.Error == "" {
		t.Errorf("pub1 after it left: %+v", p1)
	}
	if n := st.Selection.ProbeFailures; n != 0 {
		t.Errorf("%d probe failures counted; an offline publisher is not a failure", n)
	}
}

// TestProbeGarbage: a publisher that answers probes with garbage is
// unreachable for the round, counted, and never selected; the other one is.
func TestProbeGarbage(t *testing.T) {
	cloud := startCloudWith(t, selectTenantYAML)
	runPublisher(t, cloud, "pub1", cloud.popAddr)
	garbagePublisher(t, cloud, "pub2")
	a := startTestAgent(t, cloud)
	st := waitStatus(t, a.Agent, "pub2's garbage seen", func(st ctlapi.Status) bool {
		return strings.Contains(publishersOf(st, "web")["pub2"].Error, "garbage")
	})
	ps := publishersOf(st, "web")
	if !ps["pub1"].Selected || ps["pub2"].Selected || ps["pub2"].Bucket != "" {
		t.Errorf("selection %+v: want pub1 only, pub2 unreachable", ps)
	}
	if st.Selection.ProbeFailures == 0 {
		t.Error("pub2's garbage is not counted")
	}
}

// garbagePublisher connects to the cloud's PoP as publisher name and answers
// every request 200 with a body: not a probe's answer.
func garbagePublisher(t *testing.T, cloud *testCloud, name string) {
	cert, err := cloud.ca.IssuePublisher(cloud.tenant.Name, name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	conf := l7.ClientTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: cloud.ca.Pool(), ServerName: "pop.test"},
		cloud.popAddr, l7.ALPNPublisher)
	conn, err := l7.DialTLS(ctx, nil, cloud.popAddr, conf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		new(l7.Server).ServeConn(ctx, conn, zap.NewNop(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "garbage")
		}))
	}()
	t.Cleanup(func() { cancel(); conn.Close(); <-done })
	for !slices.Contains(cloud.pop.Online(), name) {
		time.Sleep(10 * time.Millisecond)
	}
}

// startTestAgent starts an agent of cloud until the test's end.
func startTestAgent(t *testing.T, cloud *testCloud) *testAgent {
	t.Helper()
	a := newTestAgent(t, cloud, shortTempDir(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}
