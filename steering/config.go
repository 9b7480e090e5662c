package steering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults applied by Compile to fields a config leaves empty.
var (
	DefaultStubRange = netip.MustParsePrefix("100.64.0.0/10")
	// DefaultStubRange6 is the IPv6 stub range: a unique local prefix
	// (RFC 4193), 24 host bits like the largest IPv4 pool.
	DefaultStubRange6 = netip.MustParsePrefix("fd7a:7a61:6774::/104")
	DefaultDNSTTL     = 30 * time.Second
	DefaultConfigPoll = 5 * time.Minute
	DefaultUDPIdle    = 2 * time.Minute
)

// Bounds of client.udp_idle_timeout. A publisher keeps a UDP flow at most a
// little longer than MaxUDPIdle (cloud/publisher.DefaultUDPIdle).
const (
	MinUDPIdle = 10 * time.Second
	MaxUDPIdle = time.Hour
)

// Values of the enumerated string fields.
const (
	TunnelL7  = "l7"
	TunnelL3E = "l3e"

	FailOpen  = "open"
	FailClose = "close"
	FailLocal = "local"

	PinnedBypass = "bypass"
	PinnedBlock  = "block"

	FieldProcess = "process"
	FieldPath    = "path"
	FieldAppID   = "appid"
)

// OSes are the operating systems pinned-app exceptions may name.
var OSes = []string{"windows", "darwin", "linux", "android", "ios"}

// Problem is one error or warning found in a config: where, what, why.
type Problem struct {
	// Path locates the field, e.g. "apps[3].hosts[1]"; empty for the document.
	Path string `json:"path"`
	// Value is the offending value as written (may be empty).
	Value  string `json:"value,omitempty"`
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	if p.Value != "" {
		fmt.Fprintf(&b, "%q: ", p.Value)
	}
	b.WriteString(p.Reason)
	return b.String()
}

// ValidationError lists every problem that makes a config invalid.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid config: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid config: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// ParseConfig decodes a JSON config strictly (unknown fields and trailing data
// are errors) and validates it. Any error is a *ValidationError.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(data, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &ValidationError{[]Problem{{Reason: "trailing data after the JSON document"}}}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseConfigYAML is ParseConfig for YAML documents (tenant files, MDM).
func ParseConfigYAML(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty document")
		}
		return nil, &ValidationError{[]Problem{{Reason: err.Error()}}}
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &ValidationError{[]Problem{{Reason: "more than one YAML document"}}}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// decodeError turns a JSON decoding error into a problem with a line and column.
func decodeError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	path := ""
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off, path = te.Offset, te.Field
	}
	reason := strings.TrimPrefix(err.Error(), "json: ")
	if off > 0 && off <= int64(len(data)) {
		off-- // Offset counts the bytes read, including the offending one
		line := 1 + bytes.Count(data[:off], []byte("\n"))
		col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
		reason = fmt.Sprintf("line %d column %d: %s", line, col, reason)
	}
	return &ValidationError{[]Problem{{Path: path, Reason: reason}}}
}

// Validate checks every field and returns nil or a *ValidationError listing all
// problems. Warnings do not make a config invalid; see Warnings.
func (c *Config) Validate() error {
	_, err := check(c)
	return err
}

// Warnings returns the config's ties and shadowed rules: places where two rules
// claim the same name or prefix for overlapping ports, so that only the
// deterministic tie-break (the earlier app) decides. It is meaningful for a valid
// config; for an invalid one it lists what could be checked.
func (c *Config) Warnings() []Problem {
	ck, _ := check(c)
	return ck.warnings
}

// withDefaults returns a deep copy of c's exceptions and client with defaults
// filled in; its Apps are nil: a snapshot keeps them compactly and applies
// their one default, the l7 tunnel, itself (packApps). c must be valid.
func (c *Config) withDefaults() *Config {
	out := &Config{
		Exceptions: Exceptions{
			Domains:   slicesClone(c.Exceptions.Domains),
			Addresses: slicesClone(c.Exceptions.Addresses),
			Pinned:    slicesClone(c.Exceptions.Pinned),
		},
		Client: c.Client,
	}
	out.Client.StubRangeFallbacks = slicesClone(c.Client.StubRangeFallbacks)
	for i := range out.Exceptions.Pinned {
		if out.Exceptions.Pinned[i].Action == "" {
			out.Exceptions.Pinned[i].Action = PinnedBypass
		}
	}
	cl := &out.Client
	if cl.StubRange == "" {
		cl.StubRange = DefaultStubRange.String()
	}
	if cl.StubRange6 == "" {
		// An IPv6 stub_range serves AAAA itself; beside an IPv4 one, the
		// IPv6 stubs come from the default ULA prefix.
		if p, err := parseCIDR(cl.StubRange); err == nil && p.Addr().Is4() {
			cl.StubRange6 = DefaultStubRange6.String()
		}
	}
	setDefault(&cl.DNSTTL, DefaultDNSTTL)
	setDefault(&cl.ConfigPoll, DefaultConfigPoll)
	setDefault(&cl.UDPIdleTimeout, DefaultUDPIdle)
	if cl.FailMode == "" {
		cl.FailMode = FailOpen
	}
	if cl.CaptiveCheck == "" {
		cl.CaptiveCheck = DefaultCaptiveCheck
	}
	if o := cl.OnPremDetection; o != nil {
		cp := *o
		setDefault(&cp.Interval, DefaultOnPremInterval)
		cl.OnPremDetection = &cp
	}
	return out
}

func setDefault(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

func slicesClone[S ~[]E, E any](s S) S {
	if s == nil {
		return nil
	}
	return append(S(nil), s...)
}
