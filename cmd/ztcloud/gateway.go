package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ztagent/ztagent/cloud/gateway"
	"github.com/ztagent/ztagent/cloud/tenant"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

type gatewayFlags struct {
	addr   string
	tun    string
	status string
}

func (g *gatewayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "gateway", ":443", "L3E gateway UDP listen address")
	fs.StringVar(&g.tun, "gateway-tun", "ztgw0",
		`the gateway's TUN toward the corporate network ("none": forward only between devices); `+
			`give it the pool's first address and bring it up (ip addr add 10.77.0.1/24 dev ztgw0; ip link set ztgw0 up)`)
	fs.StringVar(&g.status, "gateway-status", "",
		"address of an HTTP listener serving the gateway's counters as JSON at /status (default: off)")
}

// gatewayRole builds the L3E gateway from the tenant file's l3e section. Its
// TUN is created here; the operator gives it the pool's first address and
// brings it up (the lab script does), so the corporate network reaches
// devices through it once it routes the pool to this host.
func gatewayRole(f serveFlags, ca *tenant.CA, names []string, current func() *tenant.Tenant, log *zap.Logger) (func(context.Context) error, error) {
	l := current().L3E
	if l == nil {
		return nil, errors.New("gateway: the tenant file has no l3e section (pool, dns, suffix, ddns)")
	}
	names = names[:len(names):len(names)]
	if sn := l.Gateway.ServerName; sn != "" && !slices.Contains(names, sn) {
		names = append(names, sn)
	}
	cert, err := ca.IssueServer(names)
	if err != nil {
		return nil, err
	}
	glog := log.Named("gateway")
	cfg := gateway.Config{Addr: f.gateway.addr, Certificate: cert, ClientCAs: ca.Pool(), Pool: l.PoolPrefix(),
		StateDir: f.state, Log: glog,
		Admit: func(peer *x509.Certificate) (gateway.Device, error) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil {
				return gateway.Device{}, err
			}
			tp, err := current().L3EDevice(p)
			return gateway.Device{ID: p.Device, User: p.User, Template: tp}, err
		}}
	if f.gateway.tun != "none" {
		if cfg.TUN, err = tun.CreateTUN(f.gateway.tun, gateway.DefaultMTU); err != nil {
			return nil, fmt.Errorf("gateway: TUN %s: %w", f.gateway.tun, err)
		}
	}
	g, err := gateway.New(cfg)
	if err != nil {
		if cfg.TUN != nil {
			cfg.TUN.Close()
		}
		return nil, err
	}
	glog.Info("L3E gateway listening", zap.Stringer("addr", g.Addr()), zap.Stringer("pool", l.PoolPrefix()),
		zap.String("tun", f.gateway.tun))
	return func(ctx context.Context) error {
		stop, err := serveGatewayStatus(f.gateway.status, g, glog)
		if err != nil {
			return err
		}
		defer stop()
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { // ends with lctx, before the function returns
			defer close(done)
			logGatewayStats(lctx, g, glog)
		}()
		err = g.Run(ctx)
		cancel()
		<-done
		glog.Info("L3E gateway stopped", zap.Any("stats", g.Stats()))
		return err
	}, nil
}

// logGatewayStats logs the gateway's counters every minute in which they
// changed, until ctx is done.
func logGatewayStats(ctx context.Context, g *gateway.Gateway, log *zap.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := g.Stats()
		now, _ := json.Marshal(st)
		if string(now) != string(last) {
			log.Info("L3E gateway counters", zap.Any("stats", st))
			last = now
		}
	}
}

// serveGatewayStatus serves g's counters at addr until stop is called.
func serveGatewayStatus(addr string, g *gateway.Gateway, log *zap.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gateway status: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(g.Stats())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	log.Info("L3E gateway status", zap.Stringer("addr", ln.Addr()))
	return func() {
		srv.Close()
		<-done
	}, nil
}
