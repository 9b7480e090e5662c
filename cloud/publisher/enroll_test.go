package publisher

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/ztagent/ztagent/cloud/tenant"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// startTenant serves the demo tenant's API on an httptest TLS server.
func startTenant(t *testing.T) (*httptest.Server, *tenant.CA) {
	t.Helper()
	return startTenantFile(t, "../../testdata/tenants/demo.yaml")
}

// startTenantFile serves the API of the tenant in file.
func startTenantFile(t *testing.T, file string) (*httptest.Server, *tenant.CA) {
	t.Helper()
	tn, err := tenant.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tenant.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := ca.TenantServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(tenant.NewHandler(tenant.HandlerConfig{
		Tenant: func() *tenant.Tenant { return tn }, CA: ca, Log: zaptest.NewLogger(t)}))
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, ca
}

func TestLoadOrEnrollPublisher(t *testing.T) {
	srv, ca := startTenant(t)
	dir := t.TempDir()
	pe := Enrollment{StateDir: dir, TenantURL: srv.URL, Roots: ca.Pool(), Name: "pub1",
		Token: "demo-publisher-token-4a9e0c7d21f3", Log: zaptest.NewLogger(t)}
	first, err := LoadOrEnroll(context.Background(), pe)
	if err != nil {
		t.Fatal(err)
	}
	// With the tenant gone, the stored identity is used.
	srv.Close()
	second, err := LoadOrEnroll(context.Background(), pe)
	if err != nil || !second.Cert.Leaf.Equal(first.Cert.Leaf) || second.PoP != first.PoP {
		t.Fatalf("stored identity not reused: %v", err)
	}
	// A corrupt file means enrolling again, which fails here with a clear error.
	if err := os.WriteFile(filepath.Join(dir, publisherFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrEnroll(context.Background(), pe)
	if err == nil || !strings.Contains(err.Error(), "cannot reach tenant API") {
		t.Errorf("corrupt state with tenant down: %v", err)
	}
	// Another name is not served from the stored identity.
	pe.Name = "pub2"
	if _, err := LoadOrEnroll(context.Background(), pe); err == nil {
		t.Error("stored pub1 identity served for pub2")
	}
}

// TestPublisherPoPs: a publisher of a tenant with several PoPs learns them
// all at enrollment and keeps them with its identity.
func TestPublisherPoPs(t *testing.T) {
	srv, ca := startTenantFile(t, "../../testdata/tenants/select.yaml")
	dir := t.TempDir()
	pe := Enrollment{StateDir: dir, TenantURL: srv.URL, Roots: ca.Pool(), Name: "pub2",
		Token: "demo-publisher2-token-6b0d2e8f43a1", Log: zaptest.NewLogger(t)}
	want := []tenantapi.PoPInfo{{Address: "10.10.0.1:8443", ServerName: "pop.demo.test"}, {Address: "10.10.0.1:8445", ServerName: "pop.demo.test"}}
	for _, what := range []string{"enrolled", "loaded"} {
		p, err := LoadOrEnroll(context.Background(), pe)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.DialList(); !slices.Equal(got, want) {
			t.Errorf("%s: dials %v, want %v", what, got, want)
		}
		srv.Close() // the second round loads the stored identity
	}
}

func TestEnrollPublisherRefused(t *testing.T) {
	srv, ca := startTenant(t)
	_, err := Enroll(context.Background(), Enrollment{TenantURL: srv.URL, Roots: ca.Pool(),
		Name: "pub1", Token: tenantapi.Secret("not-the-registration-token")}, zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), "tenant rejected the publisher name or registration token") {
		t.Errorf("wrong token: %v", err)
	}
	_, err = Enroll(context.Background(), Enrollment{TenantURL: srv.URL, Name: "pub1",
		Token: "demo-publisher-token-4a9e0c7d21f3"}, zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), "cannot reach tenant API") || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted tenant certificate: %v", err)
	}
	if _, err := Enroll(context.Background(), Enrollment{TenantURL: "http://x"}, zaptest.NewLogger(t)); err == nil {
		t.Error("plain http tenant URL accepted")
	}
}
