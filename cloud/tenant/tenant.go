// Package tenant is the reference cloud's tenant: the tenant file (users and
// groups, publishers, private apps, steering profiles, access policy, secure
// enrollment, invitations) loaded and validated strictly with every problem's
// line and path; the tenant CA that signs device, publisher and server
// certificates; the tenant API (enrollment by UPN, email invitation and its own
// IdP sign-in page, secure-enrollment tokens, sealed initial config, device
// records keyed by the device key so that a retried enrollment finds its
// device, renewal, config over mutual TLS with ETags, the admin invitation
// endpoint); and the
// access policy the PoP asks whether a flow or a name is allowed. It speaks the
// wire of enroll/tenantapi; the agent never links it.
package tenant

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// Tenant is one organisation as its tenant file defines it. A *Tenant returned by
// Load or Parse is validated and immutable: the tenant API and the PoP
// share it without locks and a reload swaps in a whole new one.
type Tenant struct {
	// Name is the tenant's identifier; it appears in every certificate it issues.
	Name string `yaml:"tenant"`
	// OrgKey is the key devices present to enroll by UPN.
	OrgKey tenantapi.Secret `yaml:"org_key"`
	// APIURL is the tenant API's public URL, as agents are told to reach it.
	APIURL string            `yaml:"api_url,omitempty"`
	PoP    tenantapi.PoPInfo `yaml:"pop"`
	// PoPs, when set, lists every PoP agents may use: each agent measures its
	// RTT to them and connects to the nearest, failing over to the next. PoP
	// (where publishers dial) defaults to the first of them.
	PoPs []tenantapi.PoPInfo `yaml:"pops,omitempty"`

	Users      []User         `yaml:"users"`
	Publishers []Publisher    `yaml:"publishers"`
	Apps       []steering.App `yaml:"apps"`
	// Steering profiles are ordered: a user gets the first profile that names them
	// or one of their groups.
	Steering []SteeringProfile `yaml:"steering"`
	// Policy rules are ordered: the first rule matching user and app decides; a flow
	// no rule matches is denied.
	Policy []PolicyRule `yaml:"policy"`
	// SecureEnrollment, when present, holds the secure-enrollment token sets.
	SecureEnrollment *SecureEnrollment `yaml:"secure_enrollment,omitempty"`
	// L3E, when present, configures the SASE gateway (ztcloud's gateway role).
	L3E *L3E `yaml:"l3e,omitempty"`
	// AdminToken, when set, enables the admin API (POST
	// /v1/admin/invitations, /v1/admin/override-codes) for callers
	// presenting it as a bearer token.
	AdminToken tenantapi.Secret `yaml:"admin_token,omitempty"`
	// TamperOverridePrivateKey, when set with AdminToken, lets the admin API
	// issue one-time tamper override codes (POST /v1/admin/override-codes)
	// for devices whose steering profile's client.tamper_override_key is its
	// public key: the private key `ztdiag tamper-key` wrote.
	TamperOverridePrivateKey tenantapi.Secret `yaml:"tamper_override_private_key,omitempty"`

	// Derived at load time; read-only afterwards.
	file        string
	overridePub string           // TamperOverridePrivateKey's client.tamper_override_key
	users       map[string]*User // by lower-cased UPN
	// userKeys indexes users[].user_key by keyHash.
	userKeys map[string]*User
	apps     map[string]*tenantApp
	pubs     map[string]*Publisher
	l3eApps  []l3eApp
	profile  []compiledProfile
	rules    []compiledRule
	warnings []Problem
}

// User is one person who may enroll devices.
type User struct {
	UPN    string   `yaml:"upn"`
	Groups []string `yaml:"groups,omitempty"`
	// UserKey is a one-time email-invitation key: one device may enroll with
	// it (userkey=), once; its used state is kept in the tenant state directory.
	UserKey tenantapi.Secret `yaml:"user_key,omitempty"`
	// PasswordHash (bcrypt) lets the user sign in on the tenant's own IdP page.
	PasswordHash tenantapi.Secret `yaml:"password_hash,omitempty"`
}

// Publisher is one connector inside the corporate network.
type Publisher struct {
	Name string `yaml:"name"`
	// Token is the registration token the publisher presents to enroll.
	Token tenantapi.Secret `yaml:"token"`
}

// SteeringProfile says which users and groups are steered to which apps, with
// which exceptions and client switches. "*" in Users or Apps means all.
type SteeringProfile struct {
	Name       string                `yaml:"name"`
	Users      []string              `yaml:"users,omitempty"`
	Groups     []string              `yaml:"groups,omitempty"`
	Apps       []string              `yaml:"apps"`
	Exceptions steering.Exceptions   `yaml:"exceptions,omitempty"`
	Client     steering.ClientConfig `yaml:"client,omitempty"`
}

// PolicyRule allows or denies users and groups access to apps. "*" in Users or
// Apps means all.
type PolicyRule struct {
	Name   string   `yaml:"name"`
	Users  []string `yaml:"users,omitempty"`
	Groups []string `yaml:"groups,omitempty"`
	Apps   []string `yaml:"apps"`
	// Action is "allow" (default) or "deny".
	Action string `yaml:"action,omitempty"`
}

// File is the path the tenant was loaded from ("" when parsed from memory).
func (t *Tenant) File() string { return t.file }

// User returns the user with the given UPN (case-insensitive), or nil.
func (t *Tenant) User(upn string) *User { return t.users[strings.ToLower(upn)] }

// Publisher returns the publisher with the given name, or nil.
func (t *Tenant) Publisher(name string) *Publisher { return t.pubs[name] }

// maxTenantFile bounds what Load reads; a tenant of 10,000 apps fits.
const maxTenantFile = 32 << 20

// Load reads, decodes and validates the tenant file at path. On failure the
// error is a *FileError naming the file and listing every problem found.
func Load(path string) (*Tenant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tenant file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTenantFile+1))
	if err != nil {
		return nil, fmt.Errorf("tenant file %s: %w", path, err)
	}
	if len(data) > maxTenantFile {
		return nil, fmt.Errorf("tenant file %s: larger than %d MiB", path, maxTenantFile>>20)
	}
	return Parse(filepath.Base(path), data)
}

// Parse decodes and validates a tenant file's contents; name is used in
// errors. YAML is the format; JSON, being YAML, is accepted too. Unknown keys are
// rejected with their line.
func Parse(name string, data []byte) (*Tenant, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FileError{File: name, Problems: []Problem{{Msg: "file is empty"}}}
		}
		return nil, &FileError{File: name, Problems: []Problem{{Msg: yamlMsg(err)}}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &FileError{File: name, Problems: []Problem{{Line: extra.Line,
			Msg: "more than one YAML document; a tenant file holds exactly one"}}}
	}
	t := &Tenant{file: name}
	var problems []Problem
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(t); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			// A custom unmarshaler failed and yaml.v3 stopped there, without a
			// line; find the offending values in the tree instead.
			if ps := locateValueErrors(&root); len(ps) > 0 {
				return nil, &FileError{File: name, Problems: ps}
			}
			return nil, &FileError{File: name, Problems: []Problem{{Msg: yamlMsg(err)}}}
		}
		// yaml.v3 keeps decoding past type errors and unknown keys and reports
		// them all; keep going so that semantic problems are reported too.
		for _, e := range te.Errors {
			problems = append(problems, yamlProblem(e))
		}
	}
	v := validator{root: &root}
	t.compile(&v)
	problems = append(problems, v.problems...)
	// Top-down reading order; problems without a line (file-level) first.
	slices.SortStableFunc(problems, func(a, b Problem) int { return a.Line - b.Line })
	if len(problems) > 0 {
		return nil, &FileError{File: name, Problems: problems}
	}
	t.warnings = v.warnings
	return t, nil
}

// yamlMsg turns yaml.v3's "yaml: line 3: ..." into "line 3: ...".
func yamlMsg(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// FileError lists every problem of one tenant file.
type FileError struct {
	File     string
	Problems []Problem
}

// Problem is one thing wrong in a tenant file.
type Problem struct {
	Line int    // 1-based; 0 when unknown
	Path string // e.g. apps[2].hosts[0]; "" for file-level problems
	Msg  string // includes the offending value, quoted
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

func (e *FileError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("tenant file %s: %s", e.File, e.Problems[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tenant file %s: %d problems:", e.File, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}
