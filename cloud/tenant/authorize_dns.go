package tenant

import (
	"slices"
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// AuthorizeDNS is Authorize for a publisher-side DNS query: the PoP lets upn
// resolve name through a publisher of appID when the name belongs to the app,
// the app resolves through its publishers (publisher_dns), and the access
// policy allows the user to reach the app. Ports play no part in a name.
func (t *Tenant) AuthorizeDNS(upn, appID, name string) ([]string, error) {
	u := t.User(upn)
	if u == nil {
		return nil, deny(tenantapi.ReasonUnknownUser, "user %q is not a member of tenant %q", upn, t.Name)
	}
	c := t.apps[appID]
	if c == nil {
		return nil, deny(tenantapi.ReasonUnknownApp, "no app %q in tenant %q", appID, t.Name)
	}
	if !c.app.PublisherDNS || !c.scope.MatchName(name) {
		name = strings.TrimSuffix(strings.ToLower(name), ".")
		return nil, deny(tenantapi.ReasonHostNotInApp, "name %q is not resolved through the publishers of app %q", name, appID)
	}
	if !t.allowed(u, appID) {
		return nil, deny(tenantapi.ReasonDeniedByPolicy, "access policy does not allow %s to reach app %q", u.UPN, appID)
	}
	if len(c.app.Publishers) == 0 {
		return nil, deny(tenantapi.ReasonNoPublisher, "app %q has no publisher", appID)
	}
	return slices.Clone(c.app.Publishers), nil
}
