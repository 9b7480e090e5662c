package tenant

// AppPublishers decides whether upn may use app appID at all (the user and
// the app exist and the access policy allows it) and returns its publishers,
// for the PoP's check of a probe. Refusals are as for Authorize.
func (t *Tenant) AppPublishers(upn, appID string) ([]string, error) {
	return t.authorize(upn, appID, nil)
}
