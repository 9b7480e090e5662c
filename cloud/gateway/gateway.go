// Package gateway is the reference cloud's SASE gateway, the server end of the
// L3E tunnel (the wire is tunnel/l3e). Devices dial it over DTLS 1.2 with the
// device certificate the tenant issued; it checks the certificate against the
// tenant CA and asks Admit whether the device may use L3E (an unknown or
// revoked device is refused in the handshake, and dropped at the next recheck
// when it is revoked later), gives the device a VPN address from the tenant's
// pool (the same one every time, persisted in the state directory), pushes the
// template, and then forwards whole IP packets: from devices to the corporate
// network through a TUN in the gateway's namespace, from that TUN to the
// device that owns the destination address, and from device to device
// directly. Every packet is checked against the routes of the user on each
// end (tunnel/l3e.Filter), both ways; what is not allowed is dropped and
// counted (Stats).
package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v2"
	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ztagent/ztagent/tunnel/l3e"
)

// Config configures a gateway.
type Config struct {
	// Addr is the UDP address to listen on (":443").
	Addr string
	// Certificate is the gateway's server certificate; ClientCAs the tenant CA.
	Certificate tls.Certificate
	ClientCAs   *x509.CertPool
	// Pool is the tenant's VPN prefix. Its first host address is the
	// gateway's own (give it to the TUN); devices get the ones after it.
	Pool netip.Prefix
	// Admit decides whether the device presenting peer (verified against
	// ClientCAs) may use L3E, and returns its identity and template; the
	// gateway fills in the address, version, MTU and keepalive. It is asked at
	// the handshake and again every RecheckEvery.
	Admit func(peer *x509.Certificate) (Device, error)
	// TUN is the corporate side; the gateway reads and closes it. Nil: only
	// device-to-device traffic is forwarded.
	TUN tun.Device
	// StateDir keeps the addresses given out ("" = memory only).
	StateDir string
	// MTU is the inner MTU pushed to devices (default DefaultMTU).
	MTU int
	// Keepalive is the interval pushed to devices (default 10s); an
	// association silent for three intervals is dropped.
	Keepalive time.Duration
	// RecheckEvery is how often every association is admitted again (default 5s).
	RecheckEvery time.Duration
	// HandshakeTimeout bounds one handshake (default 10s).
	HandshakeTimeout time.Duration
	Log              *zap.Logger
}

// Device is what Admit says of a device.
type Device struct {
	ID, User string
	// Template holds the DNS servers, suffix, routes and DDNS parameters.
	Template l3e.Template
}

// DefaultMTU is the inner MTU pushed unless Config.MTU says otherwise.
const DefaultMTU = l3e.DefaultMTU

// maxHandshakes bounds the handshakes in progress at once; each lasts at
// most Config.HandshakeTimeout.
const maxHandshakes = 64

// Gateway is a running gateway. Build it with New, run it with Run.
//
// It owns its UDP socket: one receive loop (recvmmsg) opens the records of
// established associations in place and forwards their packets (to the TUN,
// or sealed in place for another device, one sendmmsg per batch); every
// other datagram goes to the remote address's FeedConn, on which pion runs
// the handshake and keeps its retransmissions and alerts.
type Gateway struct {
	cfg   Config
	log   *zap.Logger
	sock  *l3e.Socket
	conf  *dtls.Config
	pool  *pool
	stats counters

	amu    sync.Mutex                            // serialises writers of assocs
	assocs atomic.Pointer[map[netip.Addr]*assoc] // by VPN address; readers never lock
	hsem   chan struct{}                         // handshake slots
	tunw   *l3e.TUNWriter                        // to cfg.TUN; nil without one

	rmu     sync.Mutex // guards remotes, stopped and wg.Add
	remotes map[netip.AddrPort]*remote
	stopped bool
	wg      sync.WaitGroup // handshakes and associations
}

// New checks cfg, opens the address pool and binds the UDP socket.
func New(cfg Config) (*Gateway, error) {
	if cfg.Admit == nil || cfg.ClientCAs == nil || !cfg.Pool.IsValid() {
		return nil, errors.New("gateway: Admit, ClientCAs and Pool are required")
	}
	if cfg.Pool.Bits() > cfg.Pool.Addr().BitLen()-2 {
		return nil, fmt.Errorf("gateway: pool %s holds no device address", cfg.Pool)
	}
	cfg.MTU = cmp(cfg.MTU, DefaultMTU)
	cfg.Keepalive = cmp(cfg.Keepalive, 10*time.Second)
	cfg.RecheckEvery = cmp(cfg.RecheckEvery, 5*time.Second)
	cfg.HandshakeTimeout = cmp(cfg.HandshakeTimeout, 10*time.Second)
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	p, err := openPool(cfg.Pool, cfg.StateDir)
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Log, pool: p, hsem: make(chan struct{}, maxHandshakes)}
	g.assocs.Store(&map[netip.Addr]*assoc{})
	g.conf = &dtls.Config{
		Certificates:         []tls.Certificate{cfg.Certificate},
		CipherSuites:         l3e.CipherSuites,
		ClientAuth:           dtls.RequireAndVerifyClientCert,
		ClientCAs:            cfg.ClientCAs,
		ExtendedMasterSecret: dtls.RequireExtendedMasterSecret,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || len(chains[0]) == 0 {
				return errors.New("no verified client certificate")
			}
			_, err := cfg.Admit(chains[0][0])
			return err
		},
		LoggerFactory: l3e.LoggerFactory(g.log, &g.stats.records),
	}
	laddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	u, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen on %s: %w", cfg.Addr, err)
	}
	g.sock = l3e.NewSocket(u)
	g.remotes = map[netip.AddrPort]*remote{}
	return g, nil
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// isClientHello admits a new peer address only with a handshake record, so
// stray datagrams make no state.
func isClientHello(d []byte) bool {
	return len(d) > 13 && d[0] == 22 // handshake
}

// Addr is the bound UDP address.
func (g *Gateway) Addr() net.Addr { return g.sock.Conn().LocalAddr() }

// GatewayAddr is the gateway's own address in the pool, for its TUN.
func (g *Gateway) GatewayAddr() netip.Prefix {
	return netip.PrefixFrom(g.pool.gatewayAddr(), g.cfg.Pool.Bits())
}

// Run serves until ctx is done, then tears down and returns once every
// goroutine it started has exited. Call it once.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var loops sync.WaitGroup
	if g.cfg.TUN != nil {
		g.tunw = l3e.NewTUNWriter(g.cfg.TUN, func(n int) { g.stats.drops[dropTUN].Add(uint64(n)) })
		loops.Add(1)
		go func() {
			defer loops.Done()
			g.readTUN()
		}()
	}
	loops.Add(2)
	go func() {
		defer loops.Done()
		g.recheckLoop(ctx)
	}()
	failed := make(chan error, 1)
	go func() {
		defer loops.Done()
		failed <- g.receive(ctx)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-failed:
	}
	// Order: no new handshakes, cancel those in progress, say bye to and
	// close every association, wait for their goroutines, close the socket
	// (which ends the receive loop), then stop the TUN writer and close the
	// TUN, which ends its reader.
	g.rmu.Lock()
	g.stopped = true
	g.rmu.Unlock()
	cancel()
	for _, a := range *g.assocs.Load() {
		a.close("gateway shutting down")
	}
	g.wg.Wait()
	g.sock.Close()
	if g.cfg.TUN != nil {
		g.tunw.Close()
		g.cfg.TUN.Close()
	}
	loops.Wait()
	return err
}

// recheckLoop admits every association again, so a revoked device or a
// changed template is in force within RecheckEvery, and drops those whose
// device has been silent for three keepalive intervals.
func (g *Gateway) recheckLoop(ctx context.Context) {
	t := time.NewTicker(min(g.cfg.RecheckEvery, g.cfg.Keepalive))
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			recheck := now.Sub(last) >= g.cfg.RecheckEvery
			if recheck {
				last = now
			}
			for _, a := range *g.assocs.Load() {
				if silent := now.Sub(time.Unix(0, a.last.Load())); silent > 3*g.cfg.Keepalive {
					a.log.Info("L3E device silent", zap.Duration("for", silent.Round(time.Second)))
					a.close("silent for " + silent.Round(time.Second).String())
				} else if recheck {
					a.recheck()
				}
			}
		}
	}
}

// register makes a the association for its address, replacing an older one
// of the same device (a re-key: make before break).
func (g *Gateway) register(a *assoc) {
	g.amu.Lock()
	defer g.amu.Unlock()
	next := make(map[netip.Addr]*assoc, len(*g.assocs.Load())+1)
	for k, v := range *g.assocs.Load() {
		next[k] = v
	}
	next[a.addr] = a
	g.assocs.Store(&next)
}

// unregister forgets a unless a newer association took its address.
func (g *Gateway) unregister(a *assoc) {
	g.amu.Lock()
	defer g.amu.Unlock()
	cur := *g.assocs.Load()
	if cur[a.addr] != a {
		return
	}
	next := make(map[netip.Addr]*assoc, len(cur))
	for k, v := range cur {
		if k != a.addr {
			next[k] = v
		}
	}
	g.assocs.Store(&next)
}

func (g *Gateway) lookup(addr netip.Addr) *assoc { return (*g.assocs.Load())[addr] }
