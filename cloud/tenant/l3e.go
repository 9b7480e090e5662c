package tenant

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l3e"
)

// L3E is the tenant file's l3e section: what the SASE gateway (cloud/gateway)
// gives devices. Apps with tunnel: l3e are its routes. They reach the agent
// through the gateway's template, not the agent config: the agent's steering
// refuses them (and client.dtls) as not supported yet until the agent runs the
// L3E client, so AgentConfig leaves them out.
type L3E struct {
	// Gateway is where devices dial the gateway (UDP) and the name its
	// certificate carries.
	Gateway tenantapi.PoPInfo `yaml:"gateway,omitempty"`
	// Pool is the VPN prefix ("10.77.0.0/24"); its first host address is the
	// gateway's own.
	Pool string `yaml:"pool"`
	// DNS are the corporate DNS servers for Suffix, reached through the tunnel.
	DNS    []string `yaml:"dns,omitempty"`
	Suffix string   `yaml:"suffix,omitempty"`
	// DDNS is where devices register <hostname>.<zone> (RFC 2136, TSIG).
	DDNS *l3e.DDNS `yaml:"ddns,omitempty"`
	// RevokedDevices are device ids the gateway refuses, at the handshake and
	// within seconds for those connected when the tenant file is reloaded.
	RevokedDevices []string `yaml:"revoked_devices,omitempty"`

	pool    netip.Prefix
	dns     []netip.Addr
	revoked map[string]bool
}

// PoolPrefix is the parsed pool.
func (l *L3E) PoolPrefix() netip.Prefix { return l.pool }

// ErrL3ERefused is a device the gateway must not admit.
var ErrL3ERefused = errors.New("L3E refused")

// L3EDevice decides whether the device p may use the L3E tunnel and returns
// its template without address, MTU and keepalive (the gateway's to fill):
// the tenant's DNS, suffix and DDNS, and as routes the L3E apps the policy
// allows the user.
func (t *Tenant) L3EDevice(p tenantapi.Peer) (l3e.Template, error) {
	switch {
	case t.L3E == nil:
		return l3e.Template{}, fmt.Errorf("%w: tenant %q has no l3e section", ErrL3ERefused, t.Name)
	case p.Kind != tenantapi.KindDevice:
		return l3e.Template{}, fmt.Errorf("%w: only devices may use L3E", ErrL3ERefused)
	case p.Tenant != t.Name:
		return l3e.Template{}, fmt.Errorf("%w: device of tenant %q", ErrL3ERefused, p.Tenant)
	case t.L3E.revoked[p.Device]:
		return l3e.Template{}, fmt.Errorf("%w: device %s is revoked", ErrL3ERefused, p.Device)
	}
	u := t.User(p.User)
	if u == nil {
		return l3e.Template{}, fmt.Errorf("%w: user %q is not a member of tenant %q", ErrL3ERefused, p.User, t.Name)
	}
	tp := l3e.Template{DNS: slices.Clone(t.L3E.dns), Suffix: t.L3E.Suffix, Routes: []l3e.Route{}}
	if t.L3E.DDNS != nil {
		d := *t.L3E.DDNS
		tp.DDNS = &d
	}
	for _, c := range t.l3eApps {
		if t.allowed(u, c.id) {
			tp.Routes = append(tp.Routes, c.routes...)
		}
	}
	tp.Routes = withDNS(tp.Routes, tp.DNS)
	return tp, nil
}

// withDNS lets the device reach the pushed DNS servers on port 53: a route
// holding a server gets 53 added to its ports, a server outside every route
// gets a route of its own (routes never overlap).
func withDNS(routes []l3e.Route, servers []netip.Addr) []l3e.Route {
	for _, s := range servers {
		i := slices.IndexFunc(routes, func(r l3e.Route) bool { return r.Prefix.Contains(s) })
		if i < 0 {
			routes = append(routes, l3e.Route{App: "dns", Prefix: netip.PrefixFrom(s, s.BitLen()), TCP: "53", UDP: "53"})
			continue
		}
		r := &routes[i]
		r.TCP, r.UDP = addPort53(r.TCP), addPort53(r.UDP)
	}
	return routes
}

func addPort53(set string) string {
	if ps, _ := l3e.ParsePorts(set); ps.Contains(53) {
		return set
	}
	if set == "" {
		return "53"
	}
	return set + ",53"
}

// l3eApp is an app with tunnel: l3e compiled to routes.
type l3eApp struct {
	id     string
	routes []l3e.Route
}

// compileL3E checks the l3e section and turns the L3E apps into routes:
// addresses, ranges and CIDRs only (the gateway routes packets, it resolves
// no names), ports in the template's grammar, and no two apps' prefixes
// overlapping, since a packet must meet one route.
func (t *Tenant) compileL3E(v *validator) {
	if l := t.L3E; l != nil {
		l.revoked = map[string]bool{}
		for _, d := range l.RevokedDevices {
			l.revoked[d] = true
		}
		var err error
		if l.pool, err = netip.ParsePrefix(l.Pool); err != nil || l.pool != l.pool.Masked() ||
			l.pool.Bits() > l.pool.Addr().BitLen()-2 {
			v.bad("l3e.pool", l.Pool, "want a network prefix with room for devices (\"10.77.0.0/24\")")
		}
		for i, s := range l.DNS {
			a, err := netip.ParseAddr(s)
			if err != nil {
				v.bad(fmt.Sprintf("l3e.dns[%d]", i), s, "not an IP address")
			}
			l.dns = append(l.dns, a)
		}
		if l.Gateway.Address == "" || l.Gateway.ServerName == "" {
			v.badf("l3e.gateway", "missing: devices dial the gateway at address (host:port) and check server_name")
		}
		tp := l3e.Template{V: l3e.TemplateVersion, Address: netip.MustParsePrefix("192.0.2.1/24"),
			MTU: 1280, KeepaliveSeconds: 10, Suffix: l.Suffix, DDNS: l.DDNS}
		if err := tp.Validate(); err != nil {
			var te *l3e.TemplateError
			if errors.As(err, &te) {
				for _, p := range te.Problems {
					v.badf("l3e."+p.Path, "%s", p.Msg)
				}
			}
		}
	}
	for i, sp := range t.Steering {
		if sp.Client.DTLS && t.L3E == nil {
			v.bad(fmt.Sprintf("steering[%d].client.dtls", i), "true", "the L3E tunnel needs the tenant's l3e section (gateway, pool, dns, suffix)")
		}
	}
	type owned struct {
		p    netip.Prefix
		path string
	}
	var seen []owned
	for i := range t.Apps {
		a := &t.Apps[i]
		if a.Tunnel != steering.TunnelL3E {
			continue
		}
		path := fmt.Sprintf("apps[%d]", i)
		if t.L3E == nil {
			v.bad(path+".tunnel", a.Tunnel, "an L3E app needs the tenant's l3e section (pool, dns, suffix)")
		}
		c := l3eApp{id: a.ID}
		for _, f := range []struct{ name, set string }{{"tcp", a.TCP}, {"udp", a.UDP}} {
			if _, err := l3e.ParsePorts(f.set); err != nil {
				v.bad(path+"."+f.name, f.set, err.Error())
			}
		}
		for j, s := range a.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", path, j)
			h, err := steering.ParseHost(s)
			if err != nil {
				continue // reported with the app
			}
			if h.Kind.IsName() {
				v.bad(hp, s, "an L3E app takes addresses, ranges and CIDRs, not names")
				continue
			}
			for _, p := range h.Prefixes {
				for _, o := range seen {
					if o.p.Overlaps(p) {
						v.bad(hp, s, fmt.Sprintf("overlaps %s (%s): an address belongs to one L3E route", o.path, o.p))
					}
				}
				seen = append(seen, owned{p, hp})
				c.routes = append(c.routes, l3e.Route{App: a.ID, Prefix: p, TCP: a.TCP, UDP: a.UDP, ICMP: true})
			}
		}
		t.l3eApps = append(t.l3eApps, c)
	}
}
