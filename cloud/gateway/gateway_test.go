package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/ztagent/ztagent/cloud/tenant"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/tunnel/l3e"
	"github.com/ztagent/ztagent/tunnel/l3e/l3etest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	vpnPool  = netip.MustParsePrefix("10.77.0.0/24")
	helpdesk = netip.MustParseAddrPort("10.20.0.20:51000")
	routes   = []l3e.Route{
		{App: "helpdesk", Prefix: netip.MustParsePrefix("10.20.0.0/24"), TCP: "3389", ICMP: true},
		{App: "voip", Prefix: vpnPool, UDP: "*"},
	}
)

// lab is a gateway with a corporate channel TUN and a tenant CA.
type lab struct {
	t       *testing.T
	ca      *tenant.CA
	state   string
	corp    *tuntest.ChannelTUN
	gw      *Gateway
	revoked sync.Map                    // device id → true
	routes  atomic.Pointer[[]l3e.Route] // when set, replaces routes
	cancel  context.CancelFunc
	done    chan struct{}
}

func newLab(t *testing.T, state, addr string) *lab {
	t.Helper()
	ca, err := tenant.LoadOrCreateCA(state)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, ca: ca, state: state}
	l.start(addr)
	return l
}

func (l *lab) start(addr string) {
	t := l.t
	cert, err := l.ca.IssueServer([]string{"gateway.test"})
	if err != nil {
		t.Fatal(err)
	}
	l.corp = tuntest.NewChannelTUN()
	l.gw, err = New(Config{Addr: addr, Certificate: cert, ClientCAs: l.ca.Pool(), Pool: vpnPool,
		TUN: l.corp.TUN(), StateDir: l.state, Keepalive: time.Second, RecheckEvery: 100 * time.Millisecond,
		Log: zaptest.NewLogger(t).Named("gateway"), Admit: l.admit})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		if err := l.gw.Run(ctx); err != nil {
			t.Errorf("gateway: %v", err)
		}
	}()
}

func (l *lab) stop() {
	l.cancel()
	<-l.done
}

func (l *lab) admit(peer *x509.Certificate) (Device, error) {
	p, err := tenantapi.PeerIdentity(peer)
	if err != nil {
		return Device{}, err
	}
	if p.Kind != tenantapi.KindDevice || p.User != "alice@demo.test" {
		return Device{}, errors.New("unknown device")
	}
	if _, ok := l.revoked.Load(p.Device); ok {
		return Device{}, errors.New("device revoked")
	}
	rs := routes
	if r := l.routes.Load(); r != nil {
		rs = *r
	}
	return Device{ID: p.Device, User: p.User, Template: l3e.Template{
		DNS: []netip.Addr{netip.MustParseAddr("10.20.0.12")}, Suffix: "corp.test", Routes: rs}}, nil
}

// device is one agent's L3E client with its channel TUN.
type device struct {
	c         *l3e.Client
	tun       *tuntest.ChannelTUN
	templates chan *l3e.Template
	cancel    context.CancelFunc
	done      chan struct{}
}

func (l *lab) deviceCert(id, user string) tls.Certificate {
	key, csrPEM, err := tenantapi.NewKey("device " + id)
	if err != nil {
		l.t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(csrPEM))
	der, err := l.ca.SignDevice(block.Bytes, tenantapi.DeviceIdentity{Tenant: "demo", DeviceID: id, User: user})
	if err != nil {
		l.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (l *lab) device(id string, edit func(*l3e.ClientConfig)) *device {
	t := l.t
	d := &device{tun: tuntest.NewChannelTUN(), templates: make(chan *l3e.Template, 16), done: make(chan struct{})}
	cfg := l3e.ClientConfig{Gateway: l.gw.Addr().String(), ServerName: "gateway.test", RootCAs: l.ca.Pool(),
		Certificate: l.deviceCert(id, "alice@demo.test"), TUN: d.tun.TUN(),
		OnTemplate: func(t *l3e.Template) { d.templates <- t },
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, HandshakeTimeout: 2 * time.Second,
		Log: zaptest.NewLogger(t).Named(id)}
	if edit != nil {
		edit(&cfg)
	}
	var err error
	if d.c, err = l3e.NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		defer close(d.done)
		d.c.Run(ctx)
	}()
	t.Cleanup(d.stop)
	return d
}

func (d *device) stop() {
	d.cancel()
	<-d.done
}

func (d *device) template(t *testing.T) *l3e.Template {
	t.Helper()
	select {
	case tp := <-d.templates:
		return tp
	case <-time.After(5 * time.Second):
		t.Fatalf("no template; client status %+v", d.c.Status())
		return nil
	}
}

// expect waits for a packet on ch and checks it is want.
func expect(t *testing.T, ch chan []byte, want []byte) {
	t.Helper()
	select {
	case got := <-ch:
		if string(got) != string(want) {
			t.Fatalf("got packet %x, want %x", got, want)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("packet not delivered")
	}
}

// clamped is pkt as the client writes it to its TUN: a SYN's MSS fits mtu.
func clamped(pkt []byte, mtu int) []byte {
	out := append([]byte{}, pkt...)
	if !l3e.ClampMSS(out, mtu) {
		panic("test SYN not clamped")
	}
	return out
}

func expectNone(t *testing.T, ch chan []byte) {
	t.Helper()
	select {
	case got := <-ch:
		t.Fatalf("packet %x delivered, want it dropped", got)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestServerToClientAndBack(t *testing.T) {
	l := newLab(t, t.TempDir(), "127.0.0.1:0")
	defer l.stop()
	d := l.device("laptop1", nil)
	tp := d.template(t)
	if tp.Address != netip.MustParsePrefix("10.77.0.2/24") || tp.Suffix != "corp.test" || len(tp.Routes) != 2 {
		t.Fatalf("template %+v", tp)
	}
	me := tp.Address.Addr()
	// The help desk opens RDP to the laptop; the laptop answers.
	syn := l3etest.Packet(helpdesk, netip.AddrPortFrom(me, 3389), l3e.ProtoTCP, nil)
	l.corp.Outbound <- syn
	expect(t, d.tun.Inbound, clamped(syn, tp.MTU))
	reply := l3etest.Packet(netip.AddrPortFrom(me, 3389), helpdesk, l3e.ProtoUDP, []byte("x"))
	reply[9] = l3e.ProtoTCP // same ports, but TCP: a non-SYN segment
	d.tun.Outbound <- reply
	expect(t, l.corp.Inbound, reply)
	// SSH is not in the template: dropped at the gateway, both ways.
	l.corp.Outbound <- l3etest.Packet(helpdesk, netip.AddrPortFrom(me, 22), l3e.ProtoTCP, nil)
	expectNone(t, d.tun.Inbound)
	// A spoofed source address is dropped by the client first.
	d.tun.Outbound <- l3etest.Packet(netip.MustParseAddrPort("10.77.0.9:3389"), helpdesk, l3e.ProtoTCP, nil)
	expectNone(t, l.corp.Inbound)
	// Counters move once a write has returned, which may be after delivery.
	eventually(t, "gateway stats", func() any { return l.gw.Stats() }, func() bool {
		s := l.gw.Stats()
		return s.Drops["policy"] == 1 && s.Associations == 1 && s.FromCorp == 1 && s.FromDevices == 1
	})
	eventually(t, "client status", func() any { return d.c.Status() }, func() bool {
		s := d.c.Status()
		return s.State == l3e.StateUp && s.PacketsIn == 1 && s.PacketsOut == 1 && s.Drops["policy"] == 1
	})
}

func TestClientToClient(t *testing.T) {
	l := newLab(t, t.TempDir(), "127.0.0.1:0")
	defer l.stop()
	a, b := l.device("laptop1", nil), l.device("laptop2", nil)
	aa, ba := a.template(t).Address.Addr(), b.template(t).Address.Addr()
	if aa == ba {
		t.Fatalf("both devices got %s", aa)
	}
	rtp := l3etest.Packet(netip.AddrPortFrom(aa, 40000), netip.AddrPortFrom(ba, 5004), l3e.ProtoUDP, []byte("rtp"))
	a.tun.Outbound <- rtp
	expect(t, b.tun.Inbound, rtp)
	back := l3etest.Packet(netip.AddrPortFrom(ba, 5004), netip.AddrPortFrom(aa, 40000), l3e.ProtoUDP, []byte("rtp"))
	b.tun.Outbound <- back
	expect(t, a.tun.Inbound, back)
	// TCP between devices is not in the routes.
	a.tun.Outbound <- l3etest.Packet(netip.AddrPortFrom(aa, 40000), netip.AddrPortFrom(ba, 5060), l3e.ProtoTCP, nil)
	expectNone(t, b.tun.Inbound)
	eventually(t, "gateway stats", func() any { return l.gw.Stats() }, func() bool { return l.gw.Stats().ToDevices == 2 })
}

// A device keeps its address across reconnects and gateway restarts, and
// comes back by itself after the gateway was down.
func TestAddressStableAndReconnect(t *testing.T) {
	state := t.TempDir()
	l := newLab(t, state, "127.0.0.1:0")
	addr := l.gw.Addr().String()
	l.device("laptop2", nil).template(t) // takes .2
	d := l.device("laptop1", nil)
	first := d.template(t).Address
	l.stop()
	waitState(t, d.c, l3e.StateBackoff)
	l.start(addr)
	defer l.stop()
	if again := d.template(t).Address; again != first {
		t.Fatalf("address %s after restart, was %s", again, first)
	}
	waitState(t, d.c, l3e.StateUp)
	if d.c.Status().Losses == 0 {
		t.Fatal("loss not counted")
	}
}

// eventually waits up to 5 s for ok, then fails showing what.
func eventually(t *testing.T, name string, what func() any, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v", name, what())
		}
	}
}

func waitState(t *testing.T, c *l3e.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Status().State != want {
		if time.Now().After(deadline) {
			t.Fatalf("client state %q, want %q (%+v)", c.Status().State, want, c.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRevoked(t *testing.T) {
	l := newLab(t, t.TempDir(), "127.0.0.1:0")
	defer l.stop()
	d := l.device("laptop1", nil)
	d.template(t)
	l.revoked.Store("laptop1", true)
	waitState(t, d.c, l3e.StateBackoff)
	if s := l.gw.Stats(); s.Drops["refused"] == 0 {
		t.Fatalf("gateway stats %+v", s)
	}
	// Its next handshakes fail.
	time.Sleep(300 * time.Millisecond)
	if s := l.gw.Stats(); s.Drops["handshake"] == 0 || s.Associations != 0 {
		t.Fatalf("gateway stats %+v", s)
	}
}

// Past RekeyRecords the client makes a new association and moves traffic to
// it before closing the old one; packets keep flowing.
func TestRekey(t *testing.T) {
	l := newLab(t, t.TempDir(), "127.0.0.1:0")
	defer l.stop()
	d := l.device("laptop1", func(c *l3e.ClientConfig) { c.RekeyRecords = 5 })
	me := d.template(t).Address.Addr()
	var sent atomic.Int32
	for i := 0; d.c.Status().Rekeys < 2; i++ {
		if i > 200 {
			t.Fatalf("no re-key: %+v", d.c.Status())
		}
		pkt := l3etest.Packet(helpdesk, netip.AddrPortFrom(me, 3389), l3e.ProtoTCP, nil)
		l.corp.Outbound <- pkt
		expect(t, d.tun.Inbound, clamped(pkt, DefaultMTU))
		sent.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "client status", func() any { return d.c.Status() }, func() bool {
		s := d.c.Status()
		return s.Losses == 0 && s.PacketsIn == uint64(sent.Load())
	})
}

// A changed template (the tenant reloaded: other routes) reaches a connected
// device at the next recheck, and is in force at once on both ends.
func TestTemplateChange(t *testing.T) {
	l := newLab(t, t.TempDir(), "127.0.0.1:0")
	defer l.stop()
	d := l.device("laptop1", nil)
	me := d.template(t).Address.Addr()
	ssh := []l3e.Route{{App: "ssh", Prefix: netip.MustParsePrefix("10.20.0.0/24"), TCP: "22"}}
	l.routes.Store(&ssh)
	if tp := d.template(t); len(tp.Routes) != 1 || tp.Routes[0].TCP != "22" {
		t.Fatalf("new template %+v", tp)
	}
	l.corp.Outbound <- l3etest.Packet(helpdesk, netip.AddrPortFrom(me, 3389), l3e.ProtoTCP, nil)
	expectNone(t, d.tun.Inbound)
	syn := l3etest.Packet(helpdesk, netip.AddrPortFrom(me, 22), l3e.ProtoTCP, nil)
	l.corp.Outbound <- syn
	expect(t, d.tun.Inbound, clamped(syn, DefaultMTU))
}
