package agent

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/platform/platformtest"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/netstack"
)

// TestStubs6: a private name gets an A answer from the stub range and an
// AAAA answer from the IPv6 stub range (the default ULA prefix); the TUN
// gets an address and a route in each; both addresses map back to the name
// and are decided as the name; both survive a restart.
func TestStubs6(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.cfgs.Set(failClose(steering.ClientConfig{}))
	a.start(t)
	p := partsOf(t, a.Agent)
	ans, owned := dnsPolicy{p}.Lookup("web.corp.test")
	if !owned || !ans.Addr.Is4() || !steering.DefaultStubRange6.Contains(ans.Addr6) {
		t.Fatalf("answer %+v, owned %v; want an IPv4 stub and one from %s", ans, owned, steering.DefaultStubRange6)
	}
	for _, addr := range []netip.Addr{ans.Addr, ans.Addr6} {
		if name, ok := (dnsPolicy{p}).Reverse(addr); !ok || name != "web.corp.test" {
			t.Errorf("Reverse(%s) = %q, %v", addr, name, ok)
		}
	}
	rc := p.routerConfig(p.snap.Load())
	agent6 := netip.PrefixFrom(agentAddr(steering.DefaultStubRange6), 128)
	if !slices.Contains(rc.Addrs, agent6) || !slices.Contains(rc.Routes, steering.DefaultStubRange6) {
		t.Errorf("router config %+v lacks %s or the route %s", rc, agent6, steering.DefaultStubRange6)
	}
	if st := a.Status(); st.TUN.Addr6 != agent6.Addr() {
		t.Errorf("status TUN addr6 %s, want %s", st.TUN.Addr6, agent6.Addr())
	}
	d, host, stub := p.decide(flowTo(ans.Addr6, 80), steering.TCP)
	if d.Action != steering.L7 || host != "web.corp.test" || !stub {
		t.Errorf("flow to %s: %v %q stub=%v; want l7 to web.corp.test", ans.Addr6, d.Action, host, stub)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := newFakeAgent(t, p.a.cfg.StateDir, nil)
	b.cfgs.Set(failClose(steering.ClientConfig{}))
	b.start(t)
	again, _ := dnsPolicy{partsOf(t, b.Agent)}.Lookup("web.corp.test")
	if again.Addr != ans.Addr || again.Addr6 != ans.Addr6 {
		t.Errorf("after a restart web.corp.test is %s/%s, was %s/%s", again.Addr, again.Addr6, ans.Addr, ans.Addr6)
	}
}

// TestStubs6Off: with stub_range6 "off" a private name has no IPv6 stub and
// the TUN no IPv6 stub route.
func TestStubs6Off(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.cfgs.Set(failClose(steering.ClientConfig{StubRange6: steering.StubRange6Off}))
	a.start(t)
	p := partsOf(t, a.Agent)
	ans, owned := dnsPolicy{p}.Lookup("web.corp.test")
	if !owned || ans.Addr6.IsValid() || p.stubs.v6 != nil {
		t.Fatalf("answer %+v with stub_range6 off; want no IPv6 stub", ans)
	}
	if rc := p.routerConfig(p.snap.Load()); len(rc.Addrs) != 1 {
		t.Errorf("TUN addresses %v; want only the IPv4 one", rc.Addrs)
	}
}

// refusing6 is a router that refuses every IPv6 address, as an OS with IPv6
// switched off does.
type refusing6 struct {
	platformtest.Router
	mu      sync.Mutex
	refused int
}

func (r *refusing6) Set(cfg platform.RouterConfig) error {
	for _, a := range cfg.Addrs {
		if a.Addr().Is6() {
			r.mu.Lock()
			r.refused++
			r.mu.Unlock()
			return errors.New("permission denied (IPv6 disabled)")
		}
	}
	return r.Router.Set(cfg)
}

// TestStubs6RefusedByOS: an OS that refuses the IPv6 stub address leaves
// the agent running with IPv4 stubs only, and AAAA without an answer.
func TestStubs6RefusedByOS(t *testing.T) {
	r := &refusing6{}
	a := newFakeAgent(t, "", func(c *Config) {
		c.NewRouter = func(string, *zap.Logger) (platform.Router, error) { return r, nil }
	})
	a.cfgs.Set(failClose(steering.ClientConfig{}))
	a.start(t)
	p := partsOf(t, a.Agent)
	ans, owned := dnsPolicy{p}.Lookup("web.corp.test")
	if !owned || !ans.Addr.Is4() || ans.Addr6.IsValid() {
		t.Fatalf("answer %+v; want an IPv4 stub only", ans)
	}
	if cur, _ := r.Current(); len(cur.Addrs) != 1 || r.refused != 1 {
		t.Errorf("applied %+v after %d refusals; want the IPv4 address only, after one", cur, r.refused)
	}
}

// flowTo is a TCP flow from a client socket to dst:port.
func flowTo(dst netip.Addr, port uint16) netstack.Flow {
	src := netip.MustParseAddrPort("10.0.0.2:40000")
	if dst.Is6() {
		src = netip.MustParseAddrPort("[fd00::2]:40000")
	}
	return netstack.Flow{Proto: netstack.ProtoTCP, Src: src, Dst: netip.AddrPortFrom(dst, port)}
}

// failClose is the fake tenant's config with cl and fail mode "close", so
// that private names get stubs while the fake agent has no tunnel.
func failClose(cl steering.ClientConfig) *tenantapi.AgentConfig {
	cl.FailMode = steering.FailClose
	return fakeConfig(fakeApps(), cl)
}
