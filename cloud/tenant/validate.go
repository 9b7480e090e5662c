package tenant

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// validator collects every problem of a tenant file, each with its path and,
// found through the parsed YAML tree, its line.
type validator struct {
	root     *yaml.Node
	problems []Problem
	reported map[string]bool // paths with a problem
	warnings []Problem       // see warnings.go
}

// bad records a problem with the offending value quoted.
func (v *validator) bad(path, value, msg string) {
	v.badf(path, "%q: %s", value, msg)
}

// badf records a problem whose message carries no value (secrets, missing keys).
func (v *validator) badf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Line: v.line(path), Path: path,
		Msg: fmt.Sprintf(format, args...)})
	if v.reported == nil {
		v.reported = make(map[string]bool)
	}
	v.reported[path] = true
}

// addSteering records the problems of a *steering.ValidationError (the agent's
// own validation), each at the tenant-file path mapPath gives for its path. A
// path that already has a problem is not reported twice.
func (v *validator) addSteering(err error, mapPath func(string) string) {
	var ve *steering.ValidationError
	if !errors.As(err, &ve) {
		return
	}
	for _, p := range ve.Problems {
		path := mapPath(p.Path)
		switch {
		case v.reported[path]:
		case p.Value != "":
			v.bad(path, p.Value, p.Reason)
		default:
			v.badf(path, "%s", p.Reason)
		}
	}
}

// subPath is the path of field under p; field may be empty.
func subPath(p, field string) string {
	if field == "" {
		return p
	}
	return p + "." + field
}

// line finds the line of path ("apps[2].hosts[0]") in the YAML tree, or of its
// deepest existing ancestor; 0 when the tree has none of it.
func (v *validator) line(path string) int {
	n := v.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, seg := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(seg, "[")
		if n = mapValue(n, key); n == nil {
			return line
		}
		line = n.Line
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// minSecretLen is the shortest org key or token accepted: 16 characters of a
// random string carry enough entropy to resist online guessing.
const minSecretLen = 16

// compile validates t and builds its lookup tables; problems go to v.
func (t *Tenant) compile(v *validator) {
	t.checkHeader(v)
	t.compileUsers(v)
	t.compilePublishers(v)
	t.compileApps(v)
	t.compileL3E(v)
	t.compileProfiles(v)
	t.compileRules(v)
	t.compileSecureEnrollment(v)
	t.compileInvitations(v)
	t.validateSteering(v)
	t.warnUnreachableApps(v)
}

func (t *Tenant) checkHeader(v *validator) {
	if t.Name == "" {
		v.badf("tenant", "missing: the tenant's name is required")
	} else if !tenantapi.ValidTenantName(t.Name) {
		v.bad("tenant", t.Name, "invalid tenant name (lower-case letters, digits and '-', at most 63)")
	}
	switch {
	case t.OrgKey == "":
		v.badf("org_key", "missing: devices enroll with it")
	case len(t.OrgKey) < minSecretLen:
		v.badf("org_key", "too short: use at least %d random characters", minSecretLen)
	}
	if t.APIURL != "" {
		u, err := url.Parse(t.APIURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.User != nil {
			v.bad("api_url", t.APIURL, "must be an https:// URL with a host and no query")
		}
	}
	for i := range t.PoPs {
		validatePoP(v, fmt.Sprintf("pops[%d]", i), &t.PoPs[i])
	}
	if t.PoP.Address == "" && len(t.PoPs) > 0 {
		t.PoP = t.PoPs[0]
	} else {
		validatePoP(v, "pop", &t.PoP)
	}
}

// validatePoP checks a PoP's address (path is its place in the file) and
// defaults its server name to the address's host.
func validatePoP(v *validator, path string, p *tenantapi.PoPInfo) {
	if p.Address == "" {
		v.badf(path+".address", "missing: the host:port agents dial")
	} else if host, port, err := net.SplitHostPort(p.Address); err != nil || host == "" {
		v.bad(path+".address", p.Address, "must be host:port")
	} else if _, err := steering.ParsePort(port); err != nil {
		v.bad(path+".address", p.Address, err.Error())
	} else if p.ServerName == "" {
		// The certificate the PoP presents is issued for its address by default.
		p.ServerName = host
	}
}

func (t *Tenant) compileUsers(v *validator) {
	t.users = make(map[string]*User, len(t.Users))
	for i := range t.Users {
		u := &t.Users[i]
		path := fmt.Sprintf("users[%d]", i)
		at := strings.LastIndexByte(u.UPN, '@')
		switch {
		case u.UPN == "":
			v.badf(path+".upn", "missing")
			continue
		case at <= 0 || at == len(u.UPN)-1 || strings.ContainsAny(u.UPN, " \t\r\n/?#"):
			v.bad(path+".upn", u.UPN, "not a UPN (user@domain)")
			continue
		}
		key := strings.ToLower(u.UPN)
		if t.users[key] != nil {
			v.bad(path+".upn", u.UPN, "duplicate user")
			continue
		}
		t.users[key] = u
		for j, g := range u.Groups {
			if strings.TrimSpace(g) == "" || g == "*" {
				v.bad(fmt.Sprintf("%s.groups[%d]", path, j), g, "invalid group name")
			}
		}
	}
}

func (t *Tenant) compilePublishers(v *validator) {
	t.pubs = make(map[string]*Publisher, len(t.Publishers))
	for i := range t.Publishers {
		p := &t.Publishers[i]
		path := fmt.Sprintf("publishers[%d]", i)
		switch {
		case p.Name == "":
			v.badf(path+".name", "missing")
		case !tenantapi.ValidTenantName(p.Name):
			v.bad(path+".name", p.Name, "invalid publisher name (lower-case letters, digits and '-')")
		case t.pubs[p.Name] != nil:
			v.bad(path+".name", p.Name, "duplicate publisher")
		default:
			t.pubs[p.Name] = p
		}
		if len(p.Token) < minSecretLen {
			v.badf(path+".token", "missing or too short: use at least %d random characters", minSecretLen)
		}
	}
}

func (t *Tenant) compileApps(v *validator) {
	t.apps = make(map[string]*tenantApp, len(t.Apps))
	for i := range t.Apps {
		a := &t.Apps[i]
		path := fmt.Sprintf("apps[%d]", i)
		c := &tenantApp{app: a}
		switch {
		case a.ID == "":
			v.badf(path+".id", "missing")
		case !validAppID(a.ID):
			v.bad(path+".id", a.ID, "invalid app id (letters, digits, '-', '_' and '.')")
		case t.apps[a.ID] != nil:
			v.bad(path+".id", a.ID, "duplicate app id")
		default:
			t.apps[a.ID] = c
		}
		// Hosts and ports are read by the agent's own grammar.
		var err error
		c.scope, err = steering.CompileApp(a)
		v.addSteering(err, func(p string) string { return subPath(path, p) })
		t.checkAppTunnel(v, path, a.Tunnel, a.Publishers)
	}
}

func (t *Tenant) checkAppTunnel(v *validator, path, tunnel string, pubs []string) {
	switch tunnel {
	case "", "l7":
		if len(pubs) == 0 {
			v.badf(path+".publishers", "missing: an L7 app needs at least one publisher")
		}
	case "l3e":
	default:
		v.bad(path+".tunnel", tunnel, `must be "l7" or "l3e"`)
	}
	for j, p := range pubs {
		if t.pubs[p] == nil {
			v.bad(fmt.Sprintf("%s.publishers[%d]", path, j), p, "no such publisher")
		}
	}
}

func validAppID(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return s != "*"
}
