package steering

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// checked is a config as the validator understood it: the parsed form of every
// field, reused by Compile so nothing is parsed twice.
type checked struct {
	apps      []checkedApp
	exDomains []Host
	exAddrs   []Host
	pinned    []*Pattern
	stub      netip.Prefix
	fallbacks []netip.Prefix // client.stub_range_fallbacks
	stub6     netip.Prefix   // invalid when off
	problems  []Problem
	warnings  []Problem
}

type checkedApp struct {
	hosts []Host
	appPorts
}

func (ck *checked) errorf(path, value, format string, args ...any) {
	ck.problems = append(ck.problems, Problem{Path: path, Value: value, Reason: fmt.Sprintf(format, args...)})
}

func (ck *checked) warnf(path, value, format string, args ...any) {
	ck.warnings = append(ck.warnings, Problem{Path: path, Value: value, Reason: fmt.Sprintf(format, args...)})
}

// check validates c completely, collecting every problem and warning.
func check(c *Config) (*checked, error) {
	ck := &checked{}
	ck.checkNotSupportedYet(c, -1)
	ck.checkClient(&c.Client)
	ids := make(map[string]int, len(c.Apps))
	ck.apps = make([]checkedApp, len(c.Apps))
	for i := range c.Apps {
		ck.checkNotSupportedYet(c, i)
		ck.checkApp(i, &c.Apps[i], ids)
	}
	ck.checkExceptions(&c.Exceptions)
	ck.findTies(c)
	if len(ck.problems) > 0 {
		return ck, &ValidationError{Problems: ck.problems}
	}
	return ck, nil
}

func (ck *checked) checkClient(cl *ClientConfig) {
	ck.stub = DefaultStubRange
	if cl.StubRange != "" {
		if p, ok := ck.stubPrefix("client.stub_range", cl.StubRange); ok {
			ck.stub = p
		}
	}
	ck.fallbacks = make([]netip.Prefix, 0, len(cl.StubRangeFallbacks))
	for i, s := range cl.StubRangeFallbacks {
		path := "client.stub_range_fallbacks[" + strconv.Itoa(i) + "]"
		if p, ok := ck.stubPrefix(path, s); ok {
			if p.Overlaps(ck.stub) {
				ck.errorf(path, s, "overlaps the stub range %s", ck.stub)
			}
			ck.fallbacks = append(ck.fallbacks, p)
		}
	}
	ck.checkStub6(cl)
	durs := []struct {
		name     string
		d        Duration
		min, max time.Duration
	}{
		{"client.dns_ttl", cl.DNSTTL, time.Second, 24 * time.Hour},
		{"client.config_poll", cl.ConfigPoll, 10 * time.Second, 24 * time.Hour},
		{"client.probe_interval", cl.ProbeInterval, 10 * time.Second, 24 * time.Hour},
		{"client.reauth_interval", cl.ReauthInterval, time.Minute, 365 * 24 * time.Hour},
		{"client.reauth_grace", cl.ReauthGrace, time.Second, 30 * 24 * time.Hour},
		{"client.udp_idle_timeout", cl.UDPIdleTimeout, MinUDPIdle, MaxUDPIdle},
	}
	for _, d := range durs {
		if d.d != 0 && (d.d.D() < d.min || d.d.D() > d.max) {
			ck.errorf(d.name, d.d.String(), "must be between %v and %v (or unset for the default)", d.min, d.max)
		}
	}
	if cl.ReauthGrace != 0 && cl.ReauthInterval == 0 {
		ck.warnf("client.reauth_grace", cl.ReauthGrace.String(), "has no effect while reauth_interval is unset")
	}
	if cl.FailMode != "" && cl.FailMode != FailOpen && cl.FailMode != FailClose && cl.FailMode != FailLocal {
		ck.errorf("client.fail_mode", cl.FailMode, `must be "open", "close" or "local"`)
	}
	if h := cl.TamperPassword; h != "" {
		if _, err := parseTamperHash(h); err != nil {
			ck.errorf("client.tamper_password", "(hash)", "%v", err)
		}
	}
	if k := cl.TamperOverrideKey; k != "" {
		if _, err := parseOverrideKey(k); err != nil {
			ck.errorf("client.tamper_override_key", k, "%v", err)
		}
	}
	if cl.OnPremDetection != nil {
		ck.checkOnPrem(cl.OnPremDetection)
	}
	ck.checkCaptive(cl.CaptiveCheck)
}

// stubPrefix parses a stub range at path.
func (ck *checked) stubPrefix(path, s string) (netip.Prefix, bool) {
	p, err := parseCIDR(s)
	switch {
	case err != nil:
		ck.errorf(path, s, "%v", err)
	case p.Addr().BitLen()-p.Bits() < 2 || p.Addr().BitLen()-p.Bits() > maxStubHostBits:
		ck.errorf(path, s, "stub range must have between 2 and %d host bits", maxStubHostBits)
	default:
		return p, true
	}
	return netip.Prefix{}, false
}

func (ck *checked) checkApp(i int, a *App, ids map[string]int) {
	p := "apps[" + strconv.Itoa(i) + "]"
	switch {
	case a.ID == "":
		ck.errorf(p+".id", "", "required")
	case !validID(a.ID):
		ck.errorf(p+".id", a.ID, "must be 1-64 characters of letters, digits, '.', '_' and '-'")
	default:
		if j, dup := ids[a.ID]; dup {
			ck.errorf(p+".id", a.ID, "duplicate of apps[%d].id", j)
		} else {
			ids[a.ID] = i
		}
	}
	ca := &ck.apps[i]
	*ca = ck.checkScope(p, a, ck.stub, ck.stub6)
	switch a.Tunnel {
	case "", TunnelL7:
	case TunnelL3E:
		if a.PublisherDNS {
			ck.errorf(p+".publisher_dns", "true", "publisher DNS needs the l7 tunnel")
		}
	default:
		ck.errorf(p+".tunnel", a.Tunnel, `must be "l7" or "l3e"`)
	}
	checkNames(ck, p+".publishers", a.Publishers)
	checkNames(ck, p+".tags", a.Tags)
}

// checkScope parses what an app covers, its hosts and its ports, reporting
// problems under the app's path p ("" for paths relative to the app). Hosts
// must stay out of the stub ranges that are valid.
func (ck *checked) checkScope(p string, a *App, stubs ...netip.Prefix) checkedApp {
	if len(a.Hosts) == 0 {
		ck.errorf(subPath(p, "hosts"), "", "at least one host is required")
	}
	ca := checkedApp{hosts: make([]Host, len(a.Hosts))}
	for j, h := range a.Hosts {
		s, err := ParseHost(h)
		if err != nil {
			ck.errorf(hostPath(p, j), h, "%v", err)
			continue
		}
		if stub, ok := overlapsAny(s.Prefixes, stubs); ok {
			ck.errorf(hostPath(p, j), h, "overlaps the stub range %s", stub)
		} else if fb, ok := overlapsAny(s.Prefixes, ck.fallbacks); ok {
			ck.errorf(hostPath(p, j), h, "overlaps the fallback stub range %s", fb)
		}
		ca.hosts[j] = s
	}
	var err error
	if ca.tcp, err = parsePorts(a.TCP); err != nil {
		ck.errorf(subPath(p, "tcp"), a.TCP, "%v", err)
	}
	if ca.udp, err = parsePorts(a.UDP); err != nil {
		ck.errorf(subPath(p, "udp"), a.UDP, "%v", err)
	}
	for _, ps := range []struct{ name, set string }{{"tcp", a.TCP}, {"udp", a.UDP}} {
		if ps.set != "" && strings.TrimSpace(ps.set) == "" {
			ck.errorf(subPath(p, ps.name), ps.set, "empty port set: leave %s out for an app that does not use it", ps.name)
		}
	}
	if strings.TrimSpace(a.TCP) == "" && strings.TrimSpace(a.UDP) == "" {
		ck.errorf(p, a.ID, "app has neither tcp nor udp ports")
	}
	return ca
}

// hostPath is the path of host j of the app at p; p may be empty.
func hostPath(p string, j int) string { return subPath(p, "hosts["+strconv.Itoa(j)+"]") }

// subPath is the path of field under p; p may be empty.
func subPath(p, field string) string {
	if p == "" {
		return field
	}
	return p + "." + field
}

func checkNames(ck *checked, path string, names []string) {
	seen := make(map[string]int, len(names))
	for j, n := range names {
		np := fmt.Sprintf("%s[%d]", path, j)
		if strings.TrimSpace(n) == "" || strings.TrimSpace(n) != n {
			ck.errorf(np, n, "must be non-empty without surrounding spaces")
			continue
		}
		if k, dup := seen[n]; dup {
			ck.warnf(np, n, "duplicate of %s[%d]", path, k)
		}
		seen[n] = j
	}
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (ck *checked) checkExceptions(e *Exceptions) {
	ck.exDomains = make([]Host, len(e.Domains))
	for i, d := range e.Domains {
		p := fmt.Sprintf("exceptions.domains[%d]", i)
		s, err := ParseHost(d)
		switch {
		case err != nil:
			ck.errorf(p, d, "%v", err)
		case !s.Kind.IsName():
			ck.errorf(p, d, "%s is not a domain (put it in exceptions.addresses)", s.Kind.withArticle())
		default:
			ck.exDomains[i] = s
		}
	}
	ck.exAddrs = make([]Host, len(e.Addresses))
	for i, a := range e.Addresses {
		p := fmt.Sprintf("exceptions.addresses[%d]", i)
		s, err := ParseHost(a)
		switch {
		case err != nil:
			ck.errorf(p, a, "%v", err)
		case s.Kind.IsName():
			ck.errorf(p, a, "a name is not an address (put it in exceptions.domains)")
		default:
			ck.exAddrs[i] = s
		}
	}
	ck.pinned = make([]*Pattern, len(e.Pinned))
	for i := range e.Pinned {
		ck.checkPinned(i, &e.Pinned[i])
	}
}

func (ck *checked) checkPinned(i int, pa *PinnedApp) {
	p := fmt.Sprintf("exceptions.pinned[%d]", i)
	if strings.TrimSpace(pa.Name) == "" {
		ck.errorf(p+".name", pa.Name, "required")
	}
	if !slices.Contains(OSes, pa.OS) {
		ck.errorf(p+".os", pa.OS, "must be one of %s", strings.Join(OSes, ", "))
	}
	switch pa.Field {
	case FieldProcess, FieldPath, FieldAppID:
	default:
		ck.errorf(p+".field", pa.Field, `must be "process", "path" or "appid"`)
	}
	switch pa.Action {
	case "", PinnedBypass, PinnedBlock:
	default:
		ck.errorf(p+".action", pa.Action, `must be "bypass" or "block"`)
	}
	if pa.Pattern == "" {
		ck.errorf(p+".pattern", "", "required")
		return
	}
	re, err := CompilePattern(pa.Pattern)
	if err != nil {
		ck.errorf(p+".pattern", pa.Pattern, "%v", err)
		return
	}
	ck.pinned[i] = re
}

// overlapsAny returns the first valid stub range that one of ps overlaps.
func overlapsAny(ps, stubs []netip.Prefix) (netip.Prefix, bool) {
	for _, stub := range stubs {
		for _, pfx := range ps {
			if stub.IsValid() && pfx.Overlaps(stub) {
				return stub, true
			}
		}
	}
	return netip.Prefix{}, false
}
