package l3e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// TemplateVersion is the template format this package speaks.
const TemplateVersion = 1

// Template is what the gateway pushes to a device after the handshake.
type Template struct {
	// V is TemplateVersion.
	V int `json:"v"`
	// Address is the device's VPN address with the pool's prefix length
	// ("10.77.0.5/24").
	Address netip.Prefix `json:"address"`
	// MTU is the inner MTU the device's L3E TUN must use.
	MTU int `json:"mtu"`
	// DNS are the corporate DNS servers for Suffix, reached through the tunnel.
	DNS    []netip.Addr `json:"dns,omitempty"`
	Suffix string       `json:"suffix,omitempty"`
	// Routes are the destinations the user may reach through the tunnel, and
	// that may reach the device; they never overlap.
	Routes []Route `json:"routes"`
	// KeepaliveSeconds is how often the device sends a keepalive.
	KeepaliveSeconds int `json:"keepalive_s"`
	// DDNS, when present, is where the device registers <hostname>.<zone>.
	DDNS *DDNS `json:"ddns,omitempty"`
}

// Route is one prefix of an L3E app with the protocols and ports allowed to it.
type Route struct {
	App    string       `json:"app,omitempty"`
	Prefix netip.Prefix `json:"prefix"`
	// TCP and UDP are port sets ("22,80,8000-8099", "*" for all); empty means
	// the protocol is not allowed.
	TCP  string `json:"tcp,omitempty"`
	UDP  string `json:"udp,omitempty"`
	ICMP bool   `json:"icmp,omitempty"`
}

// DDNS are the RFC 2136 parameters the agent hands to its dynamic-DNS client.
type DDNS struct {
	// Server is host:port of the corporate DNS server taking updates.
	Server string `json:"server" yaml:"server"`
	// Zone is the zone updated, fully qualified ("corp.test.").
	Zone string `json:"zone" yaml:"zone"`
	// KeyName and Algorithm name the TSIG key ("hmac-sha256" only).
	KeyName   string `json:"key_name" yaml:"key_name"`
	Algorithm string `json:"algorithm" yaml:"algorithm"`
	// Secret is the TSIG secret, base64.
	Secret Secret `json:"secret" yaml:"secret"`
	// TTL of the registered record, seconds.
	TTL int `json:"ttl" yaml:"ttl"`
}

// Secret is a credential that never reaches a log line.
type Secret string

func (Secret) String() string { return "[redacted]" }

// Keepalive returns the keepalive interval.
func (t *Template) Keepalive() time.Duration {
	return time.Duration(t.KeepaliveSeconds) * time.Second
}

// Problem is one thing wrong in a template, at its path.
type Problem struct {
	Path, Msg string
}

// TemplateError lists every problem of a refused template.
type TemplateError struct {
	Problems []Problem
}

func (e *TemplateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "l3e template refused: %d problem(s)", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("; ")
		if p.Path != "" {
			b.WriteString(p.Path + ": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// DecodeTemplate decodes and validates a whole template. Unknown fields are
// refused: a field the device does not understand is a setting it would not
// honour.
func DecodeTemplate(data []byte) (*Template, error) {
	if len(data) > MaxTemplate {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t Template
	if err := dec.Decode(&t); err != nil {
		return nil, &TemplateError{Problems: []Problem{{Msg: "not a template: " + err.Error()}}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &TemplateError{Problems: []Problem{{Msg: "trailing data after the template"}}}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Encode returns the template's JSON after validating it.
func (t *Template) Encode() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// Validate returns a *TemplateError listing every problem of t, or nil.
func (t *Template) Validate() error {
	var ps []Problem
	bad := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if t.V != TemplateVersion {
		bad("v", "version %d, this agent speaks %d", t.V, TemplateVersion)
	}
	switch {
	case !t.Address.IsValid():
		bad("address", "missing")
	case t.Address.Addr() == t.Address.Masked().Addr() && t.Address.Bits() < t.Address.Addr().BitLen():
		bad("address", "%s is the network address of its prefix", t.Address)
	}
	if t.MTU < 576 || t.MTU > 9000 {
		bad("mtu", "%d is outside 576–9000", t.MTU)
	}
	for i, a := range t.DNS {
		if !a.IsValid() || a.IsUnspecified() {
			bad(fmt.Sprintf("dns[%d]", i), "invalid address %q", a)
		}
	}
	if t.Suffix != "" && !validName(t.Suffix) {
		bad("suffix", "invalid DNS name %q", t.Suffix)
	}
	if t.KeepaliveSeconds < 1 || t.KeepaliveSeconds > 3600 {
		bad("keepalive_s", "%d is outside 1–3600", t.KeepaliveSeconds)
	}
	ps = append(ps, validateRoutes(t.Routes)...)
	if t.DDNS != nil {
		ps = append(ps, t.DDNS.Problems("ddns")...)
	}
	if len(ps) > 0 {
		return &TemplateError{Problems: ps}
	}
	return nil
}

func validateRoutes(routes []Route) []Problem {
	var ps []Problem
	for i, r := range routes {
		p := fmt.Sprintf("routes[%d]", i)
		switch {
		case !r.Prefix.IsValid():
			ps = append(ps, Problem{p + ".prefix", "missing or invalid"})
			continue
		case r.Prefix != r.Prefix.Masked():
			ps = append(ps, Problem{p + ".prefix", fmt.Sprintf("%s has host bits set (want %s)", r.Prefix, r.Prefix.Masked())})
			continue
		}
		if r.TCP == "" && r.UDP == "" && !r.ICMP {
			ps = append(ps, Problem{p, "allows no protocol (tcp, udp or icmp)"})
		}
		for _, f := range []struct{ name, set string }{{"tcp", r.TCP}, {"udp", r.UDP}} {
			if _, err := ParsePorts(f.set); err != nil {
				ps = append(ps, Problem{p + "." + f.name, err.Error()})
			}
		}
		for j := range i {
			if routes[j].Prefix.IsValid() && routes[j].Prefix.Overlaps(r.Prefix) {
				ps = append(ps, Problem{p + ".prefix", fmt.Sprintf("%s overlaps routes[%d] (%s)", r.Prefix, j, routes[j].Prefix)})
			}
		}
	}
	return ps
}

// Problems lists what is wrong with d, each path below path.
func (d *DDNS) Problems(path string) []Problem {
	var ps []Problem
	bad := func(field, format string, args ...any) {
		ps = append(ps, Problem{path + "." + field, fmt.Sprintf(format, args...)})
	}
	host, port, err := net.SplitHostPort(d.Server)
	if err != nil || host == "" {
		bad("server", "want host:port, got %q", d.Server)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad("server", "invalid port %q", port)
	}
	if !strings.HasSuffix(d.Zone, ".") || !validName(d.Zone) {
		bad("zone", "want a fully qualified name ending in '.', got %q", d.Zone)
	}
	if !strings.HasSuffix(d.KeyName, ".") || !validName(d.KeyName) {
		bad("key_name", "want a fully qualified name ending in '.', got %q", d.KeyName)
	}
	if d.Algorithm != "hmac-sha256" {
		bad("algorithm", "%q is not supported (hmac-sha256 is)", d.Algorithm)
	}
	if k, err := base64.StdEncoding.DecodeString(string(d.Secret)); err != nil || len(k) < 16 {
		bad("secret", "want base64 of at least 16 bytes")
	}
	if d.TTL < 1 || d.TTL > 86400 {
		bad("ttl", "%d is outside 1–86400", d.TTL)
	}
	return ps
}

// validName reports whether s is a DNS name of letters, digits, '-' and '_'
// labels (a trailing dot allowed).
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
