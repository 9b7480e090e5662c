package tenant

import (
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// AuthorizeDNS is Authorize for a publisher-side DNS query: the PoP lets upn
// resolve name through a publisher of appID when the name belongs to the app,
// the app resolves through its publishers (publisher_dns), and the access
// policy allows the user to reach the app. Ports play no part in a name.
func (t *Tenant) AuthorizeDNS(upn, appID, name string) ([]string, error) {
	return t.authorize(upn, appID, func(c *tenantApp) error {
		if !c.app.PublisherDNS || !c.scope.MatchName(name) {
			name = strings.TrimSuffix(strings.ToLower(name), ".")
			return deny(tenantapi.ReasonHostNotInApp, "name %q is not resolved through the publishers of app %q", name, appID)
		}
		return nil
	})
}
