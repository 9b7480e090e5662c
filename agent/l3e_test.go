package agent

import (
	"context"
	"crypto/x509"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cloud/gateway"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/platform/platformtest"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l3e"
	"github.com/ztagent/ztagent/tunnel/l3e/l3etest"
)

// TestL3E: with client.dtls and a gateway in its config the agent brings up
// a second TUN, takes the gateway's template (address and routes on that
// TUN, the corporate suffix in the OS resolver's domains), carries packets
// both ways and shows it all in its status; the L7 parts are unchanged.
func TestL3E(t *testing.T) {
	var mu sync.Mutex
	var l3eTUN *tuntest.ChannelTUN
	var l3eRouter *platformtest.Router
	fa := newFakeAgent(t, "", func(c *Config) {
		c.L3ETUNName = "ztl3e-test"
		c.NewTUN = func(name string, mtu int) (tun.Device, error) {
			ct := tuntest.NewChannelTUN()
			if name == "ztl3e-test" {
				mu.Lock()
				l3eTUN = ct
				mu.Unlock()
			}
			return fakeTUNOf(ct.TUN())(name, mtu)
		}
		c.NewRouter = func(dir string, _ *zap.Logger) (platform.Router, error) {
			r := &platformtest.Router{}
			if strings.HasSuffix(dir, "l3e") {
				mu.Lock()
				l3eRouter = r
				mu.Unlock()
			}
			return r, nil
		}
	})
	corp := tuntest.NewChannelTUN()
	cert, err := fa.enr.CA.IssueServer("gateway.test")
	if err != nil {
		t.Fatal(err)
	}
	routes := []l3e.Route{{App: "rdp", Prefix: netip.MustParsePrefix("10.20.0.0/24"), TCP: "3389", UDP: "53"}}
	gw, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", Certificate: cert, ClientCAs: fa.enr.CA.Pool(),
		Pool: netip.MustParsePrefix("10.77.0.0/24"), TUN: corp.TUN(), Log: zaptest.NewLogger(t).Named("gateway"),
		Admit: func(peer *x509.Certificate) (gateway.Device, error) {
			p, err := tenantapi.PeerIdentity(peer)
			return gateway.Device{ID: p.Device, User: p.User, Template: l3e.Template{Routes: routes,
				DNS: []netip.Addr{netip.MustParseAddr("10.20.0.12")}, Suffix: "corp.test"}}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gwDone := make(chan struct{})
	go func() {
		defer close(gwDone)
		gw.Run(ctx)
	}()
	defer func() {
		cancel()
		<-gwDone
	}()
	cfg := fakeConfig(fakeApps(), steering.ClientConfig{DTLS: true})
	cfg.Gateway = &tenantapi.PoPInfo{Address: gw.Addr().String(), ServerName: "gateway.test"}
	fa.cfgs.Set(cfg)
	fa.start(t)

	st := waitStatus(t, fa.Agent, "L3E up", func(st ctlapi.Status) bool {
		return st.L3E != nil && st.L3E.State == l3e.StateUp && st.L3E.Address.IsValid()
	})
	me := st.L3E.Address.Addr()
	if st.L3E.Suffix != "corp.test" || len(st.L3E.Routes) != 1 || st.L3E.TUN == "" {
		t.Fatalf("L3E status %+v", st.L3E)
	}
	mu.Lock()
	rc, _ := l3eRouter.Current()
	dev := l3eTUN
	mu.Unlock()
	if !slices.Contains(rc.Addrs, netip.PrefixFrom(me, 32)) || !slices.Contains(rc.Routes, netip.MustParsePrefix("10.20.0.0/24")) {
		t.Fatalf("L3E router %+v", rc)
	}
	waitFor(t, "corp.test in the resolver's domains", func() bool {
		d, _ := fa.dns.Current()
		return slices.Contains(d.Domains, "corp.test")
	})

	syn := l3etest.Packet(netip.MustParseAddrPort("10.20.0.20:51000"), netip.AddrPortFrom(me, 3389), l3e.ProtoTCP, nil)
	want := slices.Clone(syn)
	l3e.ClampMSS(want, l3e.DefaultMTU)
	corp.Outbound <- syn
	select {
	case got := <-dev.Inbound:
		if string(got) != string(want) {
			t.Fatalf("got %x, want %x", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("packet from the corporate network not delivered to the L3E TUN")
	}
	reply := l3etest.Packet(netip.AddrPortFrom(me, 53000), netip.MustParseAddrPort("10.20.0.12:53"), l3e.ProtoUDP, []byte("q"))
	dev.Outbound <- reply
	select {
	case got := <-corp.Inbound:
		if string(got) != string(reply) {
			t.Fatalf("got %x, want %x", got, reply)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("packet from the L3E TUN not delivered to the corporate network")
	}
	// The client counts a packet out after its write returns, which may be
	// after the gateway delivered it.
	waitStatus(t, fa.Agent, "L3E counters", func(st ctlapi.Status) bool {
		return st.L3E.PacketsIn == 1 && st.L3E.PacketsOut == 1
	})
}
