package tenant

// AuthorizeEcho is Authorize for an ICMP echo (ping): the PoP lets upn ping
// host through a publisher of appID when the host lies inside the app and the
// access policy allows the user to reach the app. An echo has no port, so the
// app's ports play no part: a user who may reach an app may ping its hosts.
func (t *Tenant) AuthorizeEcho(upn, appID, host string) ([]string, error) {
	return t.authorize(upn, appID, func(c *tenantApp) error { return hostInApp(c, host, appID) })
}
