package tenant

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// subjects is the "who" of a steering profile or policy rule.
type subjects struct {
	all    bool
	users  map[string]bool // lower-cased UPNs
	groups map[string]bool
}

func (s *subjects) match(u *User) bool {
	if s.all || s.users[strings.ToLower(u.UPN)] {
		return true
	}
	for _, g := range u.Groups {
		if s.groups[g] {
			return true
		}
	}
	return false
}

// appSet is the "what" of a profile or rule, in tenant-file order.
type appSet struct {
	all bool
	ids map[string]bool
}

func (a *appSet) contains(id string) bool { return a.all || a.ids[id] }

// tenantApp is an app of the tenant file with what it covers compiled by the
// agent's own grammar, for the PoP's checks. scope is nil only in a tenant that
// failed to load.
type tenantApp struct {
	app   *steering.App
	scope *steering.AppMatcher
}

type compiledProfile struct {
	p    *SteeringProfile
	who  subjects
	apps appSet
}

type compiledRule struct {
	r     *PolicyRule
	who   subjects
	apps  appSet
	allow bool
}

func (t *Tenant) compileSubjects(v *validator, path string, users, groups []string) subjects {
	s := subjects{users: map[string]bool{}, groups: map[string]bool{}}
	known := map[string]bool{}
	for _, u := range t.Users {
		for _, g := range u.Groups {
			known[g] = true
		}
	}
	for i, u := range users {
		switch {
		case u == "*":
			s.all = true
		case t.users[strings.ToLower(u)] == nil:
			v.bad(fmt.Sprintf("%s.users[%d]", path, i), u, "no such user")
		default:
			s.users[strings.ToLower(u)] = true
		}
	}
	for i, g := range groups {
		if !known[g] {
			v.bad(fmt.Sprintf("%s.groups[%d]", path, i), g, "no such group (no user is in it)")
		}
		s.groups[g] = true
	}
	if len(users) == 0 && len(groups) == 0 {
		v.badf(path, `names nobody: set users (or "*") or groups`)
	}
	return s
}

func (t *Tenant) compileAppSet(v *validator, path string, ids []string) appSet {
	s := appSet{ids: map[string]bool{}}
	for i, id := range ids {
		switch {
		case id == "*":
			s.all = true
		case t.apps[id] == nil:
			v.bad(fmt.Sprintf("%s.apps[%d]", path, i), id, "no such app")
		default:
			s.ids[id] = true
		}
	}
	if len(ids) == 0 {
		v.badf(path+".apps", `missing: list app ids or "*"`)
	}
	return s
}

func (t *Tenant) compileProfiles(v *validator) {
	names := map[string]bool{}
	for i := range t.Steering {
		p := &t.Steering[i]
		path := fmt.Sprintf("steering[%d]", i)
		if p.Name == "" {
			v.badf(path+".name", "missing")
		} else if names[p.Name] {
			v.bad(path+".name", p.Name, "duplicate steering profile")
		}
		names[p.Name] = true
		t.profile = append(t.profile, compiledProfile{p: p,
			who:  t.compileSubjects(v, path, p.Users, p.Groups),
			apps: t.compileAppSet(v, path, p.Apps)})
	}
}

func (t *Tenant) compileRules(v *validator) {
	for i := range t.Policy {
		r := &t.Policy[i]
		path := fmt.Sprintf("policy[%d]", i)
		if r.Name == "" {
			v.badf(path+".name", "missing")
		}
		allow := true
		switch r.Action {
		case "", "allow":
		case "deny":
			allow = false
		default:
			v.bad(path+".action", r.Action, `must be "allow" or "deny"`)
		}
		t.rules = append(t.rules, compiledRule{r: r, allow: allow,
			who:  t.compileSubjects(v, path, r.Users, r.Groups),
			apps: t.compileAppSet(v, path, r.Apps)})
	}
}

// steeringFor returns the config of the first profile naming u, apps in
// tenant-file order; ok is false when no profile names u.
func (t *Tenant) steeringFor(u *User) (cfg steering.Config, ok bool) {
	for i := range t.profile {
		if t.profile[i].who.match(u) {
			cfg, _ = t.profileConfig(&t.profile[i])
			return cfg, true
		}
	}
	return steering.Config{Apps: []steering.App{}}, false
}

// profileConfig builds the config a profile gives its users, deep-copied, and
// for each of its apps the index of that app in the tenant file.
func (t *Tenant) profileConfig(cp *compiledProfile) (steering.Config, []int) {
	cfg := steering.Config{Apps: []steering.App{}, Exceptions: cp.p.Exceptions, Client: cp.p.Client}
	cfg.Exceptions.Domains = slices.Clone(cfg.Exceptions.Domains)
	cfg.Exceptions.Addresses = slices.Clone(cfg.Exceptions.Addresses)
	cfg.Exceptions.Pinned = slices.Clone(cfg.Exceptions.Pinned)
	var idx []int
	for i, a := range t.Apps {
		// L3E apps reach the device through the gateway's template (see L3E).
		if cp.apps.contains(a.ID) && a.Tunnel != steering.TunnelL3E {
			a.Hosts = slices.Clone(a.Hosts)
			a.Publishers = slices.Clone(a.Publishers)
			a.Tags = slices.Clone(a.Tags)
			cfg.Apps = append(cfg.Apps, a)
			idx = append(idx, i)
		}
	}
	return cfg, idx
}

// validateSteering runs the agent's own validation (steering.Config.Validate)
// on every config the tenant can hand out, so that no AgentConfig is ever
// refused by an agent. Its problems are mapped back to tenant-file paths; a path
// this file's checks already reported is not reported twice.
func (t *Tenant) validateSteering(v *validator) {
	add := v.addSteering
	// Every app, including those in no profile, with the default client config.
	var l7 []steering.App
	var l7idx []int
	for i, a := range t.Apps {
		if a.Tunnel != steering.TunnelL3E {
			l7, l7idx = append(l7, a), append(l7idx, i)
		}
	}
	add((&steering.Config{Apps: l7}).Validate(), func(p string) string { return appPath(p, l7idx, "") })
	for i := range t.profile {
		cfg, idx := t.profileConfig(&t.profile[i])
		prefix := fmt.Sprintf("steering[%d].", i)
		add(cfg.Validate(), func(p string) string { return appPath(p, idx, prefix) })
	}
}

// appPath maps a path of a steering config whose apps are the tenant file's
// apps idx back to the tenant file; paths outside apps get prefix.
func appPath(p string, idx []int, prefix string) string {
	rest, ok := strings.CutPrefix(p, "apps[")
	if !ok {
		return prefix + p
	}
	n, tail, _ := strings.Cut(rest, "]")
	k, err := strconv.Atoi(n)
	if err != nil || k < 0 || k >= len(idx) {
		return prefix + p
	}
	return fmt.Sprintf("apps[%d]%s", idx[k], tail)
}

// AgentConfig returns the config for upn's agent: only the apps the user is
// steered to. A known user whom no profile names gets a config that steers
// nothing. An unknown user is a *DenyError with reason unknown_user.
func (t *Tenant) AgentConfig(upn string) (*tenantapi.AgentConfig, error) {
	u := t.User(upn)
	if u == nil {
		return nil, deny(tenantapi.ReasonUnknownUser, "user %q is not a member of tenant %q", upn, t.Name)
	}
	cfg, _ := t.steeringFor(u)
	ac := &tenantapi.AgentConfig{Tenant: t.Name, User: u.UPN, PoP: t.PoP, PoPs: slices.Clone(t.PoPs), Steering: cfg}
	if cfg.Client.DTLS && t.L3E != nil {
		gw := t.L3E.Gateway
		ac.Gateway = &gw
	}
	return ac, nil
}

// Authorize decides whether upn may open a flow to host:port over proto ("tcp"
// or "udp") as app appID, for the PoP. It checks, in order, that the user and the
// app exist, that host and port lie inside the app's definition and that the
// access policy allows it; on success it returns the app's publishers. Every
// refusal is a *DenyError (errors.Is ErrDenied) whose message is safe to show the
// user.
func (t *Tenant) Authorize(upn, appID, host string, port uint16, proto string) ([]string, error) {
	return t.authorize(upn, appID, func(c *tenantApp) error {
		if err := hostInApp(c, host, appID); err != nil {
			return err
		}
		if p, err := steering.ParseProtocol(proto); err != nil || !c.scope.Admits(p, port) {
			return deny(tenantapi.ReasonPortNotInApp, "%s port %d is not part of app %q", proto, port, appID)
		}
		return nil
	})
}

// hostInApp refuses a host outside app c.
func hostInApp(c *tenantApp, host, appID string) error {
	if !c.scope.MatchHost(host) {
		return deny(tenantapi.ReasonHostNotInApp, "host %q is not part of app %q", host, appID)
	}
	return nil
}

// authorize is every decision of the PoP's: that the user and the app exist,
// what admits says of the request against the app (nil admits anything),
// that the access policy allows the user the app, and that the app has
// publishers, whom it returns.
func (t *Tenant) authorize(upn, appID string, admits func(*tenantApp) error) ([]string, error) {
	u := t.User(upn)
	if u == nil {
		return nil, deny(tenantapi.ReasonUnknownUser, "user %q is not a member of tenant %q", upn, t.Name)
	}
	c := t.apps[appID]
	if c == nil {
		return nil, deny(tenantapi.ReasonUnknownApp, "no app %q in tenant %q", appID, t.Name)
	}
	if admits != nil {
		if err := admits(c); err != nil {
			return nil, err
		}
	}
	if !t.allowed(u, appID) {
		return nil, deny(tenantapi.ReasonDeniedByPolicy, "access policy does not allow %s to reach app %q", u.UPN, appID)
	}
	if len(c.app.Publishers) == 0 {
		return nil, deny(tenantapi.ReasonNoPublisher, "app %q has no publisher", appID)
	}
	return slices.Clone(c.app.Publishers), nil
}

// allowed applies the ordered policy: the first rule matching user and app
// decides; none matching is a deny.
func (t *Tenant) allowed(u *User, appID string) bool {
	for _, r := range t.rules {
		if r.apps.contains(appID) && r.who.match(u) {
			return r.allow
		}
	}
	return false
}

// ErrDenied: the PoP must refuse the flow (see *DenyError for the reason).
var ErrDenied = errors.New("access denied")

// DenyError is a refusal by the tenant's policy. Reason is machine-readable
// (Reason* constants); the message is one sentence safe to show the user.
type DenyError struct {
	Reason string
	msg    string
}

func deny(reason, format string, args ...any) *DenyError {
	return &DenyError{Reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (e *DenyError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrDenied) true.
func (e *DenyError) Is(target error) bool { return target == ErrDenied }
