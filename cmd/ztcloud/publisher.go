package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ztagent/ztagent/cloud/publisher"
	"github.com/ztagent/ztagent/cloud/tenant"
	"github.com/ztagent/ztagent/cmd/internal/logging"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// publisherTokenEnv carries the registration token when --token is not given,
// out of the process list like --token @FILE (see tenantapi.ReadSecret).
const publisherTokenEnv = "ZTCLOUD_PUBLISHER_TOKEN"

// cmdPublisher runs a standalone publisher: it enrolls with the tenant API by
// its registration token (once; the certificate is kept in --state), then dials
// out to the PoP the tenant names and serves streams until stopped.
func cmdPublisher(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ztcloud publisher", flag.ContinueOnError)
	name := fs.String("name", "", "publisher name, as in the tenant file")
	token := fs.String("token", "", "publisher registration token, or @FILE to read it from a file other users cannot read (default $"+publisherTokenEnv+", which may be @FILE too); a token given here is visible in ps")
	tenantURL := fs.String("tenant-url", "", "tenant API URL, e.g. https://tenant.example.com:8444")
	cacert := fs.String("cacert", "", "tenant CA certificate (PEM) to trust the tenant API and PoP")
	resolver := fs.String("resolver", "", "corporate DNS resolver ip:port (default: system resolver)")
	state := fs.String("state", "/var/lib/ztcloud-publisher", "state directory for the publisher's key and certificate")
	popAddr := fs.String("pop", "", "PoP host:port to dial instead of those the tenant names (e.g. a relay in front of one); the TLS name stays the tenant's")
	level := zapcore.InfoLevel
	fs.Var(&level, "log-level", "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	from := "--token"
	if *token == "" {
		*token, from = os.Getenv(publisherTokenEnv), "$"+publisherTokenEnv
	}
	tok, err := tenantapi.ReadSecret(*token)
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	if *name == "" || *tenantURL == "" {
		return errors.New("--name and --tenant-url are required")
	}
	log, err := logging.New(level)
	if err != nil {
		return err
	}
	defer log.Sync()
	var roots *x509.CertPool
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			return fmt.Errorf("--cacert: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--cacert %s: no PEM certificate in it", *cacert)
		}
	}
	pub, err := publisher.LoadOrEnroll(ctx, publisher.Enrollment{
		StateDir:  *state,
		TenantURL: *tenantURL,
		Name:      *name,
		Token:     tok,
		Roots:     roots,
		Log:       log,
	})
	if err != nil {
		return err
	}
	// One connection to every PoP of the tenant: a device may use any of them.
	pops := pub.DialList()
	if *popAddr != "" {
		pops = []tenantapi.PoPInfo{{Address: *popAddr, ServerName: pub.PoP.ServerName}}
	}
	var runs []func(context.Context) error
	for _, pp := range pops {
		p := publisher.New(publisher.Config{
			Name:     *name,
			PoPAddr:  pp.Address,
			TLS:      publisherTLS(pub.Cert, pub.Roots, pp.ServerName),
			Resolver: *resolver,
			Log:      log.Named("publisher"),
		})
		log.Info("publisher running", zap.String("name", *name), zap.String("pop", pp.Address))
		runs = append(runs, p.Run)
	}
	return runAll(ctx, runs)
}

// runAll runs every run until ctx is done and all have returned; it returns
// the first error of one that failed while ctx was live.
func runAll(ctx context.Context, runs []func(context.Context) error) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(runs))
	for _, run := range runs {
		wg.Go(func() { errc <- run(ctx) })
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

func publisherTLS(cert tls.Certificate, roots *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ServerName:   serverName,
	}
}

// inProcessPublishers runs every publisher of the tenant inside this process,
// with certificates signed directly by the CA: the all-in-one small setup.
func inProcessPublishers(f serveFlags, ca *tenant.CA, t *tenant.Tenant, log *zap.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		var runs []func(context.Context) error
		for _, p := range t.Publishers {
			cert, err := ca.IssuePublisher(t.Name, p.Name)
			if err != nil {
				return err
			}
			for _, pp := range tenantapi.PoPList(t.PoP, t.PoPs) {
				pub := publisher.New(publisher.Config{
					Name:     p.Name,
					PoPAddr:  pp.Address,
					TLS:      publisherTLS(cert, ca.Pool(), pp.ServerName),
					Resolver: f.resolver,
					Log:      log.Named("publisher").With(zap.String("name", p.Name)),
				})
				runs = append(runs, pub.Run)
			}
		}
		return runAll(ctx, runs)
	}
}
