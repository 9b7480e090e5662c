package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/ztagent/ztagent/agent/agenttest"
	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/platform/platformtest"
	"github.com/ztagent/ztagent/steering"
)

// fakeAgent is an agent on fakes: enrollments by agenttest.Enroller, config
// from agenttest.Configs, and the platform fakes. Its tunnel dials a PoP
// that is not there, so it stays down.
type fakeAgent struct {
	*Agent
	enr  *agenttest.Enroller
	cfgs *agenttest.Configs
	dns  *platformtest.DNS
	mdm  *platformtest.MDM
	sess *platformtest.Sessions
	ctl  *ctlapi.Client
}

const fakeOrgKey = "fake-org-key-0123456789"

// fakeApps are the apps of fakeConfig: web (L7, TCP), net (L7, TCP by
// prefix), voice (L7, TCP and UDP ports) and dns (UDP only). The tenant's validation
// refuses L3E apps until the L3E tunnel exists, so none is here.
func fakeApps() []steering.App {
	return []steering.App{
		{ID: "web", Hosts: []string{"web.corp.test"}, TCP: "80"},
		{ID: "net", Hosts: []string{"10.30.0.0/24"}, TCP: "22,443"},
		{ID: "voice", Hosts: []string{"voice.corp.test", "10.40.0.0/24"}, TCP: "5061", UDP: "5060"},
		{ID: "dns", Hosts: []string{"dns.corp.test", "10.50.0.0/24"}, UDP: "53"},
	}
}

func fakeConfig(apps []steering.App, client steering.ClientConfig) *tenantapi.AgentConfig {
	return &tenantapi.AgentConfig{
		PoP:      tenantapi.PoPInfo{Address: "127.0.0.1:1", ServerName: "pop.test"},
		Steering: steering.Config{Apps: apps, Client: client},
	}
}

// newFakeAgent returns an agent on fakes with state in stateDir (a new
// directory when ""). mod, when set, changes the config before New.
func newFakeAgent(t *testing.T, stateDir string, mod func(*Config)) *fakeAgent {
	t.Helper()
	if stateDir == "" {
		stateDir = shortTempDir(t)
	}
	enr, err := agenttest.NewEnroller("test")
	if err != nil {
		t.Fatal(err)
	}
	enr.OrgKey = fakeOrgKey
	params, err := enroll.ParseParams([]string{"host=tenant.test", "token=" + fakeOrgKey, "upn=alice@test.example"})
	if err != nil {
		t.Fatal(err)
	}
	fa := &fakeAgent{
		enr:  enr,
		cfgs: agenttest.NewConfigs(fakeConfig(fakeApps(), steering.ClientConfig{})),
		dns:  platformtest.NewDNS(netip.MustParseAddrPort("127.0.0.1:53")),
		mdm:  platformtest.NewMDM("/etc/ztagent/mdm.json"),
		sess: &platformtest.Sessions{},
	}
	cfg := Config{
		Params:      params,
		StateDir:    stateDir,
		SocketPath:  platformtest.ControlPath(stateDir),
		DNSListen:   "127.0.0.1:0",
		MDM:         fa.mdm,
		Sessions:    fa.sess,
		SessionPoll: 20 * time.Millisecond,
		Log:         zaptest.NewLogger(t),
		Enroller:    enr,
		NewConfigSource: func(id *enroll.Identity, log *zap.Logger) (ConfigSource, error) {
			return fa.cfgs.NewSource(id, log)
		},
		NewTUN:        newFakeTUN,
		SetTUNMTU:     setFakeTUNMTU,
		NewRouter:     func(string, *zap.Logger) (platform.Router, error) { return &platformtest.Router{}, nil },
		NewDNS:        func(string, *zap.Logger) (platform.DNSConfigurator, error) { return fa.dns, nil },
		NewNetMonitor: func([]string, *zap.Logger) (platform.NetMonitor, error) { return platformtest.NewNetMonitor(), nil },
	}
	if mod != nil {
		mod(&cfg)
	}
	fa.Agent = New(cfg)
	fa.ctl = &ctlapi.Client{Socket: cfg.SocketPath}
	return fa
}

func (fa *fakeAgent) start(t *testing.T) {
	t.Helper()
	if err := fa.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fa.Close() })
}

// partsOf returns the parts in force; the test fails when there are none.
func partsOf(t *testing.T, a *Agent) *parts {
	t.Helper()
	p, _ := a.current()
	if p == nil {
		t.Fatalf("agent has no parts (%s)", a.State())
	}
	return p
}

// waitStatus waits until ok accepts the agent's status.
func waitStatus(t *testing.T, a *Agent, what string, ok func(ctlapi.Status) bool) ctlapi.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := a.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; status %s (%s), user %s, device %s", what, st.State, st.Error, st.Enrollment.User, st.Enrollment.DeviceID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func running(st ctlapi.Status) bool { return st.State == ctlapi.StateRunning }

// withClient sets client settings on the agent's live config, as a config
// sync would.
func withClient(t *testing.T, p *parts, set func(*steering.ClientConfig)) {
	t.Helper()
	cfg := *p.snap.Load().Config()
	set(&cfg.Client)
	snap, err := steering.Compile(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.apply(snap)
}

// ask sends a request to the agent's supervisor, as the agent's own parts do.
func ask(a *Agent, q request) {
	a.mu.Lock()
	reqs := a.run.reqs
	a.mu.Unlock()
	reqs <- q
}

// fakeTUN is a channel TUN whose MTU can be changed, as a real device's.
type fakeTUN struct {
	tun.Device
	mtu    atomic.Int64
	closed atomic.Bool
}

func (d *fakeTUN) Close() error {
	d.closed.Store(true)
	return d.Device.Close()
}

func newFakeTUN(name string, mtu int) (tun.Device, error) {
	return fakeTUNOf(tuntest.NewChannelTUN().TUN())(name, mtu)
}

// fakeTUNOf returns a Config.NewTUN that hands out dev, as a fakeTUN.
func fakeTUNOf(dev tun.Device) func(string, int) (tun.Device, error) {
	return func(_ string, mtu int) (tun.Device, error) {
		d := &fakeTUN{Device: dev}
		d.mtu.Store(int64(mtu))
		return d, nil
	}
}

func (d *fakeTUN) MTU() (int, error) { return int(d.mtu.Load()), nil }

// setFakeTUNMTU is Config.SetTUNMTU for newFakeTUN's devices.
func setFakeTUNMTU(dev tun.Device, mtu int) error {
	d, ok := dev.(*fakeTUN)
	if !ok {
		return fmt.Errorf("set the MTU of %T: not a fakeTUN", dev)
	}
	d.mtu.Store(int64(mtu))
	return nil
}
