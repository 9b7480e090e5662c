package tenant

import (
	"slices"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// AppPublishers decides whether upn may use app appID at all (the user and
// the app exist and the access policy allows it) and returns its publishers,
// for the PoP's check of a probe. Refusals are as for Authorize.
func (t *Tenant) AppPublishers(upn, appID string) ([]string, error) {
	u := t.User(upn)
	if u == nil {
		return nil, deny(tenantapi.ReasonUnknownUser, "user %q is not a member of tenant %q", upn, t.Name)
	}
	c := t.apps[appID]
	if c == nil {
		return nil, deny(tenantapi.ReasonUnknownApp, "no app %q in tenant %q", appID, t.Name)
	}
	if !t.allowed(u, appID) {
		return nil, deny(tenantapi.ReasonDeniedByPolicy, "access policy does not allow %s to reach app %q", u.UPN, appID)
	}
	return slices.Clone(c.app.Publishers), nil
}
