package tenant

import (
	"fmt"
	"slices"
	"strings"
)

// Warnings are what a tenant file says that is valid but almost certainly not
// meant. The file loads and is served; `ztcloud check` and every load and
// reload by `ztcloud serve` print them.

// Warnings returns the tenant file's warnings in reading order, each with its
// path and line like a problem.
func (t *Tenant) Warnings() []Problem { return slices.Clone(t.warnings) }

// warnf records a warning at path.
func (v *validator) warnf(path, format string, args ...any) {
	v.warnings = append(v.warnings, Problem{Line: v.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// warnUnreachableApps warns when users are steered to apps that no policy
// rule allows them: the agent steers their flows into the tunnel and the PoP
// refuses every one. With no policy rule at all, the usual cause is a file cut
// off before its policy: section (a truncated copy, a half-saved edit), which
// would otherwise load and deny all access without a word.
func (t *Tenant) warnUnreachableApps(v *validator) {
	// Whether rule r allows any app of profile p, computed once per pair: a
	// tenant has many users and few profiles and rules.
	overlap := map[[2]int]bool{}
	allows := func(p, r int) bool {
		k := [2]int{p, r}
		got, ok := overlap[k]
		if !ok {
			got = t.rules[r].allow && t.rules[r].apps.overlaps(&t.profile[p].apps)
			overlap[k] = got
		}
		return got
	}
	var denied []string
	for i := range t.Users {
		u := &t.Users[i]
		p := t.profileOf(u)
		if p < 0 || !t.profile[p].apps.all && len(t.profile[p].apps.ids) == 0 {
			continue
		}
		if !t.anyRule(func(r int) bool { return allows(p, r) && t.rules[r].who.match(u) }) {
			denied = append(denied, u.UPN)
		}
	}
	if len(denied) == 0 {
		return
	}
	who := fmt.Sprintf("%d users are steered to apps", len(denied))
	if len(denied) == 1 {
		who = "user " + denied[0] + " is steered to apps"
	} else if len(denied) <= 3 {
		who = "users " + strings.Join(denied, ", ") + " are steered to apps"
	}
	if len(t.Policy) == 0 {
		v.warnf("policy", "no rule: every flow is denied, yet %s — was the file cut off before its policy: section?", who)
		return
	}
	v.warnf("policy", "no allow rule covers them: %s that the PoP will refuse every time", who)
}

// profileOf is the index of the steering profile u gets, the first that names
// them; -1 for none.
func (t *Tenant) profileOf(u *User) int {
	return slices.IndexFunc(t.profile, func(p compiledProfile) bool { return p.who.match(u) })
}

// anyRule reports whether f holds for the index of some policy rule.
func (t *Tenant) anyRule(f func(r int) bool) bool {
	for r := range t.rules {
		if f(r) {
			return true
		}
	}
	return false
}

// overlaps reports whether the two sets share an app.
func (a *appSet) overlaps(b *appSet) bool {
	switch {
	case a.all:
		return b.all || len(b.ids) > 0
	case b.all:
		return len(a.ids) > 0
	case len(b.ids) < len(a.ids):
		a, b = b, a
	}
	for id := range a.ids {
		if b.ids[id] {
			return true
		}
	}
	return false
}
