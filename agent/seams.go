package agent

import (
	"context"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// Enroller enrolls this device with its tenant and renews its certificate.
// TenantEnroller is the real one; agent/agenttest has a fake that issues
// identities without a tenant.
type Enroller interface {
	// Enroll enrolls as the settings say: by email invitation, IdP sign-in
	// in the browser, or UPN.
	Enroll(ctx context.Context, p enroll.Params, openBrowser func(url string) error) (*enroll.Identity, error)
	// EnrollPreLogon enrolls the pre-logon identity (prelogonuser=).
	EnrollPreLogon(ctx context.Context, p enroll.Params) (*enroll.Identity, error)
	// EnrollIdP signs the user in through the tenant's IdP flow: a
	// re-authentication.
	EnrollIdP(ctx context.Context, p enroll.Params, openBrowser func(url string) error) (*enroll.Identity, error)
	// Renew returns id with a fresh certificate for the same key.
	Renew(ctx context.Context, id *enroll.Identity) (*enroll.Identity, error)
}

// ConfigSource fetches the config of one enrolled identity.
type ConfigSource interface {
	// Fetch returns the config and its ETag; with etag set to the last one
	// and the config unchanged it returns enroll.ErrNotModified.
	Fetch(ctx context.Context, etag string) (*tenantapi.AgentConfig, string, error)
	// Close releases the source's idle connections.
	Close()
}

// TenantEnroller enrolls with the tenant API (package enroll).
type TenantEnroller struct {
	Log *zap.Logger
}

// Enroll implements Enroller.
func (e TenantEnroller) Enroll(ctx context.Context, p enroll.Params, openBrowser func(string) error) (*enroll.Identity, error) {
	return enroll.Enroll(ctx, p, openBrowser, e.Log)
}

// EnrollPreLogon implements Enroller.
func (e TenantEnroller) EnrollPreLogon(ctx context.Context, p enroll.Params) (*enroll.Identity, error) {
	return enroll.EnrollPreLogon(ctx, p, e.Log)
}

// EnrollIdP implements Enroller.
func (e TenantEnroller) EnrollIdP(ctx context.Context, p enroll.Params, openBrowser func(string) error) (*enroll.Identity, error) {
	return enroll.EnrollIdP(ctx, p, openBrowser, e.Log)
}

// Renew implements Enroller.
func (e TenantEnroller) Renew(ctx context.Context, id *enroll.Identity) (*enroll.Identity, error) {
	return enroll.Renew(ctx, id, e.Log)
}

// newTenantConfigSource is the default Config.NewConfigSource: the tenant
// API's config client.
func newTenantConfigSource(id *enroll.Identity, log *zap.Logger) (ConfigSource, error) {
	return enroll.NewConfigClient(id, log)
}
