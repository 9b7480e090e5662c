package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ztagent/ztagent/cloud/pop"
	"github.com/ztagent/ztagent/cloud/tenant"
	"github.com/ztagent/ztagent/cmd/internal/logging"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/internal/pathmtu"
	"github.com/ztagent/ztagent/platform/atomicfile"
	"github.com/ztagent/ztagent/tunnel/l7"
)

type serveFlags struct {
	roles    string
	tenant   string
	gateway  gatewayFlags
	state    string
	api      string
	pop      string
	names    string
	resolver string
	drain    time.Duration
	level    zapcore.Level
}

func cmdServe(ctx context.Context, args []string) error {
	var f serveFlags
	fs := flag.NewFlagSet("ztcloud serve", flag.ContinueOnError)
	fs.StringVar(&f.roles, "roles", "tenant,pop", "comma-separated roles: tenant, pop, publisher, gateway")
	fs.StringVar(&f.tenant, "tenant", "", "tenant file (YAML)")
	fs.StringVar(&f.state, "state", "/var/lib/ztcloud", "state directory (the tenant CA lives here)")
	fs.StringVar(&f.api, "api", ":8444", "tenant API listen address")
	fs.StringVar(&f.pop, "pop", ":8443", "PoP listen address")
	fs.StringVar(&f.names, "names", "localhost", "comma-separated DNS names and IPs for the server certificates")
	fs.StringVar(&f.resolver, "resolver", "", "DNS resolver for the in-process publisher (ip:port; default: system)")
	fs.DurationVar(&f.drain, "drain-timeout", 30*time.Second,
		"on SIGTERM, how long the PoP waits for open streams after telling clients to reconnect (GOAWAY)")
	f.gateway.register(fs)
	f.level = zapcore.InfoLevel
	fs.Var(&f.level, "log-level", "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.tenant == "" {
		return errors.New("--tenant FILE is required")
	}
	roles, err := parseRoles(f.roles)
	if err != nil {
		return err
	}
	log, err := logging.New(f.level)
	if err != nil {
		return err
	}
	defer log.Sync()
	return serve(ctx, f, roles, log)
}

func parseRoles(s string) (map[string]bool, error) {
	roles := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		switch r {
		case "tenant", "pop", "publisher", "gateway":
			roles[r] = true
		default:
			return nil, fmt.Errorf("--roles: unknown role %q (want tenant, pop, publisher, gateway)", r)
		}
	}
	return roles, nil
}

// serve runs the chosen roles until ctx is done. Every listener is bound before
// anything is served, so a port in use fails the whole start cleanly.
func serve(ctx context.Context, f serveFlags, roles map[string]bool, log *zap.Logger) error {
	var current atomic.Pointer[tenant.Tenant]
	t, err := tenant.Load(f.tenant)
	if err != nil {
		return err
	}
	logWarnings(log, f.tenant, t)
	current.Store(t)
	if err := os.MkdirAll(f.state, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	ca, err := tenant.LoadOrCreateCA(f.state)
	if err != nil {
		return err
	}
	// Publish the CA certificate for administrators to distribute (cacert=).
	if err := atomicfile.Write(filepath.Join(f.state, "ca.pem"), ca.CertPEM(), 0o644); err != nil {
		return err
	}
	names := strings.Split(f.names, ",")

	var servers []func(context.Context) error
	if roles["tenant"] {
		run, err := tenantRole(f, ca, names, current.Load, log)
		if err != nil {
			return err
		}
		servers = append(servers, run)
	}
	if roles["pop"] {
		run, err := popRole(f, ca, names, current.Load, log)
		if err != nil {
			return err
		}
		servers = append(servers, run)
	}
	if roles["publisher"] {
		servers = append(servers, inProcessPublishers(f, ca, current.Load(), log))
	}
	if roles["gateway"] {
		run, err := gatewayRole(f, ca, names, current.Load, log)
		if err != nil {
			return err
		}
		servers = append(servers, run)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		reloadOnHUP(ctx, f.tenant, &current, log)
	}()
	errc := make(chan error, len(servers))
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- s(ctx)
		}()
	}
	log.Info("ztcloud running", zap.String("tenant", t.Name), zap.String("roles", f.roles))
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	wg.Wait()
	return first
}

// reloadOnHUP reloads the tenant file on SIGHUP. A file that does not validate
// is reported and the running tenant stays in force.
func reloadOnHUP(ctx context.Context, path string, current *atomic.Pointer[tenant.Tenant], log *zap.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			t, err := tenant.Load(path)
			if err != nil {
				log.Error("tenant reload failed, keeping the running tenant", zap.Error(err))
				continue
			}
			logWarnings(log, path, t)
			current.Store(t)
			log.Info("tenant reloaded", zap.String("file", path))
		}
	}
}

func tenantRole(f serveFlags, ca *tenant.CA, names []string, current func() *tenant.Tenant, log *zap.Logger) (func(context.Context) error, error) {
	tlsConf, err := ca.TenantServerTLS(names)
	if err != nil {
		return nil, err
	}
	ln, err := listen("tenant API", f.api)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"status\":\"ok\",\"tenant\":%q}\n", current().Name)
	})
	mux.Handle("/v1/", tenant.NewHandler(tenant.HandlerConfig{Tenant: current, CA: ca, StateDir: f.state, Log: log.Named("tenant")}))
	srv := &http.Server{Handler: mux, TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(log.Named("tenant.http"))}
	log.Info("tenant API listening", zap.Stringer("addr", ln.Addr()))
	return func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil
}

func popRole(f serveFlags, ca *tenant.CA, names []string, current func() *tenant.Tenant, log *zap.Logger) (func(context.Context) error, error) {
	// Agents and publishers verify the PoP by the server name the tenant file
	// gives them, so the certificate must carry it.
	names = names[:len(names):len(names)]
	for _, pp := range append([]tenantapi.PoPInfo{current().PoP}, current().PoPs...) {
		if pp.ServerName != "" && !slices.Contains(names, pp.ServerName) {
			names = append(names, pp.ServerName)
		}
	}
	cert, err := ca.IssueServer(names)
	if err != nil {
		return nil, err
	}
	ln, err := listen("PoP", f.pop)
	if err != nil {
		return nil, err
	}
	broker := pop.New(pop.Config{
		TLS: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.Pool(),
		},
		Authorize: func(peer *x509.Certificate, t l7.Target) ([]string, error) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil {
				return nil, err
			}
			if p.Kind != tenantapi.KindDevice {
				return nil, errors.New("only devices may open streams")
			}
			return current().Authorize(p.User, t.AppID, t.Host, t.Port, t.Proto.String())
		},
		AuthorizeDNS: func(peer *x509.Certificate, appID, qname string) ([]string, error) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil {
				return nil, err
			}
			if p.Kind != tenantapi.KindDevice {
				return nil, errors.New("only devices may resolve names")
			}
			return current().AuthorizeDNS(p.User, appID, qname)
		},
		AuthorizeEcho: func(peer *x509.Certificate, appID, host string) ([]string, error) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil {
				return nil, err
			}
			if p.Kind != tenantapi.KindDevice {
				return nil, errors.New("only devices may ping")
			}
			return current().AuthorizeEcho(p.User, appID, host)
		},
		AuthorizeApp: func(peer *x509.Certificate, appID string) ([]string, error) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil {
				return nil, err
			}
			if p.Kind != tenantapi.KindDevice {
				return nil, errors.New("only devices may probe publishers")
			}
			return current().AppPublishers(p.User, appID)
		},
		Publisher: func(peer *x509.Certificate) (string, bool) {
			p, err := tenantapi.PeerIdentity(peer)
			if err != nil || p.Kind != tenantapi.KindPublisher {
				return "", false
			}
			return p.Publisher, current().Publisher(p.Publisher) != nil
		},
		Log: log.Named("pop"),
	})
	log.Info("PoP listening", zap.Stringer("addr", ln.Addr()))
	return func(ctx context.Context) error {
		shut := make(chan struct{})
		go func() {
			defer close(shut)
			<-ctx.Done()
			// Clients move their new flows elsewhere at once; open streams
			// get up to the drain timeout to finish.
			dctx, cancel := context.WithTimeout(context.Background(), f.drain)
			defer cancel()
			broker.Shutdown(dctx)
		}()
		if err := broker.Serve(ln); err != nil && ctx.Err() == nil {
			broker.Close() // the shutdown above finds it closed
			return err
		}
		<-shut // Serve returns as the drain begins
		return nil
	}, nil
}

// listen binds addr, turning "address in use" into an actionable sentence.
// Accepted connections have their MSS clamped to a path of pathmtu.SafeMTU,
// so that an MTU black hole between a client and the cloud cannot stall them.
func listen(role, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: pathmtu.Control}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s: %s is already in use by another program: stop it or choose another address", role, addr)
		}
		return nil, fmt.Errorf("%s: listen on %s: %w", role, addr, err)
	}
	return ln, nil
}
