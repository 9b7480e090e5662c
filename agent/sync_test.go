package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.zx2c4.com/wireguard/tun"
)

// TestRefusedCachedConfig: an agent upgraded to a version that refuses a
// setting its cached config holds (an app on the L3E tunnel, written when that
// was still accepted) starts anyway with the tenant out of reach: it says so
// in the log, steers nothing, keeps the file, and takes the tenant's config
// once the tenant answers.
func TestRefusedCachedConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cloud, state := enrolledOnce(ctx, t)
	file := filepath.Join(state, configFile)
	refused := rewriteCachedConfig(t, file, func(c *cachedConfig) {
		c.Config.Steering.Apps[0].Tunnel = "l3e"
	})

	// The tenant is out of reach (its API refuses connections): only the
	// cache can start the agent.
	addr := cloud.api.Listener.Addr().String()
	cloud.api.Listener.Close()
	b := newTestAgent(t, cloud, state)
	core, logs := observer.New(zapcore.ErrorLevel)
	b.log = zap.New(core)
	if err := b.Start(ctx); err != nil {
		t.Fatalf("start with a refused cached config: %v", err)
	}
	defer b.Close()
	st := b.Status()
	if st.Config.Source != sourceNone || len(st.Apps) != 0 || st.State != ctlapi.StateRunning {
		t.Fatalf("status: source %q, apps %v, state %s", st.Config.Source, st.Apps, st.State)
	}
	if got := partsOf(t, b.Agent).snap.Load().MatchName("web.corp.test"); got.Steered() {
		t.Fatalf("a refused config steers: %+v", got)
	}
	if st.Tunnel.PoP != partsOf(t, b.Agent).synced.Load().cfg.PoP.Address || st.Tunnel.PoP == "" {
		t.Fatalf("tunnel PoP %q, want the cached config's", st.Tunnel.PoP)
	}
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, fmt.Sprint(e.Message, " ", e.ContextMap()))
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"the cached config is refused by this version of the agent",
		`apps[0].tunnel: "l3e": the L3E tunnel is not supported yet`,
		file,
		"steering nothing until the tenant sends one",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the log lacks %q:\n%s", want, all)
		}
	}
	if now, err := os.ReadFile(file); err != nil || string(now) != string(refused) {
		t.Errorf("the refused cache was changed: %v", err)
	}

	// The tenant back: the next sync brings a config this agent accepts.
	restartAPI(t, cloud, addr)
	if err := partsOf(t, b.Agent).syncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if st := b.Status(); st.Config.Source != sourceTenant || len(st.Apps) != 3 {
		t.Fatalf("after sync: source %q, apps %v", st.Config.Source, st.Apps)
	}
	if !partsOf(t, b.Agent).snap.Load().MatchName("web.corp.test").Steered() {
		t.Fatal("web.corp.test not steered after the sync")
	}
}

// TestNoConfigAtAll: with the tenant out of reach and no cache, Start fails
// as before: there is no PoP to connect to.
func TestNoConfigAtAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cloud, state := enrolledOnce(ctx, t)
	if err := os.Remove(filepath.Join(state, configFile)); err != nil {
		t.Fatal(err)
	}
	cloud.api.Listener.Close()
	b := newTestAgent(t, cloud, state)
	var dev *fakeTUN
	b.cfg.NewTUN = func(name string, mtu int) (tun.Device, error) {
		d, err := newFakeTUN(name, mtu)
		dev = d.(*fakeTUN)
		return d, err
	}
	err := b.Start(ctx)
	if err == nil {
		b.Close()
		t.Fatal("started with neither tenant nor cache")
	}
	if !strings.Contains(err.Error(), "no usable cached config") {
		t.Fatalf("err = %v", err)
	}
	// The TUN device, created first, goes with the failed start.
	if dev == nil || !dev.closed.Load() {
		t.Fatalf("TUN device %v not closed after the failed start", dev)
	}
}

// enrolledOnce runs an agent once, so that its state directory holds an
// identity and a cached config.
func enrolledOnce(ctx context.Context, t *testing.T) (*testCloud, string) {
	t.Helper()
	cloud := startCloud(t)
	state := shortTempDir(t)
	a := newTestAgent(t, cloud, state)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return cloud, state
}

func rewriteCachedConfig(t *testing.T, file string, edit func(*cachedConfig)) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c cachedConfig
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	edit(&c)
	if b, err = json.Marshal(&c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// restartAPI serves the tenant API again on addr, after its listener closed.
func restartAPI(t *testing.T, cloud *testCloud, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(cloud.api.Config.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = cloud.api.TLS
	srv.StartTLS()
	t.Cleanup(srv.Close)
}

// TestPoPListChangeRestarts: a synced config that names other PoPs is put in
// force by building the parts again, since the tunnel dials the PoPs it was
// built with.
func TestPoPListChangeRestarts(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	old := partsOf(t, a.Agent)
	cfg := fakeConfig(fakeApps(), steering.ClientConfig{})
	cfg.PoPs = []tenantapi.PoPInfo{{Address: "127.0.0.1:2", ServerName: "pop2.test"}, cfg.PoP}
	a.cfgs.Set(cfg)
	if err := old.syncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p := partsOfOrNil(a.Agent); p != nil && p != old {
			if got := p.synced.Load().cfg.DialList(); len(got) != 2 {
				t.Fatalf("PoPs after the restart: %v", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no restart after the PoP list changed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
