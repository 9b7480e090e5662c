package tenant

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

const demoTenant = "../../testdata/tenants/demo.yaml"

func loadDemo(t testing.TB) *Tenant {
	t.Helper()
	tn, err := Load(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func TestLoadDemoTenant(t *testing.T) {
	tn := loadDemo(t)
	if tn.Name != "demo" || tn.PoP.Address != "10.10.0.1:8443" || tn.PoP.ServerName != "pop.demo.test" {
		t.Errorf("header = %q %+v", tn.Name, tn.PoP)
	}
	if tn.User("ALICE@demo.test") == nil || tn.User("carol@demo.test") != nil {
		t.Error("user lookup is wrong")
	}
	if tn.Publisher("pub1") == nil {
		t.Error("publisher pub1 missing")
	}
}

func TestBrokenTenantFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string // each must appear in the error, in this order
	}{
		{"broken-values.yaml", []string{
			"tenant file broken-values.yaml: 17 problems:",
			"line 3: org_key: too short",
			`line 5: pop.address: "10.10.0.1": must be host:port`,
			`line 9: users[1].upn: "ALICE@demo.test": duplicate user`,
			`line 10: users[2].upn: "bob": not a UPN`,
			`line 19: apps[1].id: "web": duplicate app id`,
			`line 21: apps[1].tcp: "80-70": port range "80-70" ends before it starts`,
			`line 22: apps[1].publishers[0]: "pub2": no such publisher`,
			`line 24: apps[2].hosts[0]: "10.0.0.0/33": prefix length out of range`,
			`apps[2].hosts[1]: "10.0.0.5/24": host bits set (did you mean 10.0.0.0/24?)`,
			`apps[2].hosts[2]: "bad..name": empty label`,
			`apps[2].hosts[3]: "10.0.0.9-10.0.0.1": range end is before its start`,
			`line 25: apps[2].tcp: "0": port 0 is not a valid port`,
			`line 27: apps[3]: "noports": app has neither tcp nor udp ports`,
			`line 33: steering[0].groups[0]: "engeneering": no such group`,
			`line 34: steering[0].apps[1]: "wiki": no such app`,
			`line 37: policy[0].users[0]: "carol@demo.test": no such user`,
			`line 39: policy[0].action: "permit": must be "allow" or "deny"`,
		}},
		{"broken-unknown-keys.yaml", []string{
			"5 problems",
			`line 5: unknown key "servername" (did you mean "server_name"?)`,
			`line 8: unknown key "group" (did you mean "groups"?)`,
			"line 13: apps[0].hosts: at least one host is required",
			`line 14: unknown key "hosst" (did you mean "hosts"?)`,
			`line 17: unknown key "polcy" (did you mean "policy"?)`,
		}},
		{"broken-types.yaml", []string{
			`line 5: "alice@d…": expected a list`,
			`line 8: "web.cor…": expected a list`,
			`line 10: "maybe": expected true or false`,
		}},
		{"broken-steering.yaml", []string{
			"9 problems",
			`line 18: apps[1].hosts[0]: "100.64.1.0/24": overlaps the stub range 100.64.0.0/10`,
			`line 22: apps[2].hosts[0]: "voip.corp.test": an L3E app takes addresses, ranges and CIDRs, not names`,
			`line 24: apps[2].tunnel: "l3e": an L3E app needs the tenant's l3e section`,
			`line 30: steering[0].exceptions.domains[0]: "10.0.0.1": `,
			`line 32: steering[0].exceptions.pinned[0].pattern: "bank(.exe": `,
			`line 34: steering[0].client.stub_range: "10.0.0.0/33": `,
			`line 35: steering[0].client.fail_mode: "sideways": `,
			`line 36: steering[0].client.dtls: "true": the L3E tunnel needs the tenant's l3e section`,
			`line 37: steering[0].client.probe_interval: "1s": must be between 10s and 24h0m0s`,
		}},
		{"broken-duration.yaml", []string{
			"2 problems",
			`line 10: steering[0].client.dns_ttl: invalid duration "bogus"`,
			`line 10: steering[0].client.config_poll: invalid duration "-5m": negative`,
		}},
		{"broken-syntax.yaml", []string{"tenant file broken-syntax.yaml: line 4: did not find expected ',' or ']'"}},
		{"broken-empty.yaml", []string{"tenant file broken-empty.yaml: file is empty"}},
		{"no-such-file.yaml", []string{"tenant file: open ../../testdata/tenants/no-such-file.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load("../../testdata/tenants/" + tc.file)
			if err == nil {
				t.Fatal("loaded a broken tenant file")
			}
			msg := err.Error()
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error lacks %q (or has it out of order):\n%s", w, msg)
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(msg, "short\n") || strings.Contains(msg, "pub1-token") {
				t.Errorf("error leaks a secret:\n%s", msg)
			}
			var te *FileError
			if tc.file != "no-such-file.yaml" && !errors.As(err, &te) {
				t.Errorf("error is %T, want *FileError", err)
			}
		})
	}
}

func TestParseTenantRejectsSecondDocument(t *testing.T) {
	_, err := Parse("two.yaml", []byte("tenant: a\n---\ntenant: b\n"))
	if err == nil || !strings.Contains(err.Error(), "more than one YAML document") {
		t.Errorf("err = %v", err)
	}
}

func TestAgentConfig(t *testing.T) {
	tn := loadDemo(t)
	cfg, err := tn.AgentConfig("ALICE@DEMO.TEST")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "alice@demo.test" || cfg.Tenant != "demo" || len(cfg.Steering.Apps) != len(profileApps(t, "engineering")) {
		t.Errorf("alice: %+v", cfg)
	}
	// The snapshot is a copy: changing it must not change the tenant.
	cfg.Steering.Apps[0].Hosts[0] = "changed.example"
	if again, _ := tn.AgentConfig("alice@demo.test"); again.Steering.Apps[0].Hosts[0] != "web.corp.test" {
		t.Error("AgentConfig shares slices with the tenant")
	}
	if _, err := tn.AgentConfig("carol@demo.test"); !errors.Is(err, ErrDenied) {
		t.Errorf("unknown user: %v", err)
	}
}

func TestAuthorize(t *testing.T) {
	tn := loadDemo(t)
	tests := []struct {
		name, upn, app, host string
		port                 uint16
		proto, reason        string // reason "" means allowed
	}{
		{"exact name", "alice@demo.test", "web", "web.corp.test", 80, "tcp", ""},
		{"name case and trailing dot", "bob@demo.test", "web", "WEB.corp.test.", 80, "tcp", ""},
		{"wildcard one level", "bob@demo.test", "wild", "a.apps.corp.test", 80, "tcp", ""},
		{"wildcard two levels", "bob@demo.test", "wild", "x.y.apps.corp.test", 80, "tcp", ""},
		{"wildcard apex excluded", "bob@demo.test", "wild", "apps.corp.test", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"wildcard lookalike", "bob@demo.test", "wild", "evilapps.corp.test", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"ip app", "alice@demo.test", "ipapp", "10.20.0.10", 80, "tcp", ""},
		{"ip app other address", "alice@demo.test", "ipapp", "10.20.0.11", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"name against ip app", "alice@demo.test", "ipapp", "web.corp.test", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"host outside app", "alice@demo.test", "web", "other.corp.test", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"port outside app", "alice@demo.test", "web", "web.corp.test", 443, "tcp", tenantapi.ReasonPortNotInApp},
		{"protocol outside app", "alice@demo.test", "web", "web.corp.test", 80, "udp", tenantapi.ReasonPortNotInApp},
		{"unknown protocol", "alice@demo.test", "web", "web.corp.test", 80, "sctp", tenantapi.ReasonPortNotInApp},
		{"denied by policy", "alice@demo.test", "secret", "secret.corp.test", 80, "tcp", tenantapi.ReasonDeniedByPolicy},
		{"unknown app", "alice@demo.test", "wiki", "wiki.corp.test", 80, "tcp", tenantapi.ReasonUnknownApp},
		{"unknown user", "carol@demo.test", "web", "web.corp.test", 80, "tcp", tenantapi.ReasonUnknownUser},
		{"protocol in upper case", "alice@demo.test", "web", "web.corp.test", 80, "TCP", ""},
		// Hosts are read as the agent's matcher reads them (steering.AppMatcher).
		{"wildcard empty label", "bob@demo.test", "wild", ".apps.corp.test", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"wildcard double dot", "bob@demo.test", "wild", "a..apps.corp.test", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"name over 253 bytes", "bob@demo.test", "wild", strings.Repeat("a.", 120) + "apps.corp.test", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"bracketed address", "alice@demo.test", "ipapp", "[10.20.0.10]", 80, "tcp", tenantapi.ReasonHostNotInApp},
		{"IPv4-mapped address", "alice@demo.test", "ipapp", "::ffff:10.20.0.10", 80, "tcp", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pubs, err := tn.Authorize(tc.upn, tc.app, tc.host, tc.port, tc.proto)
			if tc.reason == "" {
				if err != nil || len(pubs) != 1 || pubs[0] != "pub1" {
					t.Fatalf("got %v, %v; want [pub1]", pubs, err)
				}
				return
			}
			var d *DenyError
			if !errors.As(err, &d) || d.Reason != tc.reason || !errors.Is(err, ErrDenied) {
				t.Fatalf("got %v (%T), want reason %s", err, err, tc.reason)
			}
		})
	}
}

func TestAuthorizeDNS(t *testing.T) {
	demo, err := os.ReadFile(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	// The publisher-DNS app also has an address host, which a query name must
	// not match: names resolve through the publisher, addresses need no DNS.
	data := strings.Replace(string(demo), `hosts: ["*.pdns.corp.test"]`, `hosts: ["*.pdns.corp.test", 10.20.0.0/24]`, 1)
	tn, err := Parse("pdns.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, upn, app, qname string
		reason                string // "" means allowed
	}{
		{"below the wildcard", "bob@demo.test", "pdns", "x.pdns.corp.test", ""},
		{"case and trailing dot", "bob@demo.test", "pdns", "X.PDNS.corp.test.", ""},
		{"apex", "bob@demo.test", "pdns", "pdns.corp.test", tenantapi.ReasonHostNotInApp},
		{"empty label", "bob@demo.test", "pdns", ".pdns.corp.test", tenantapi.ReasonHostNotInApp},
		{"address literal", "bob@demo.test", "pdns", "10.20.0.10", tenantapi.ReasonHostNotInApp},
		{"app without publisher DNS", "bob@demo.test", "web", "web.corp.test", tenantapi.ReasonHostNotInApp},
		{"unknown app", "bob@demo.test", "nope", "x.pdns.corp.test", tenantapi.ReasonUnknownApp},
		{"unknown user", "carol@demo.test", "pdns", "x.pdns.corp.test", tenantapi.ReasonUnknownUser},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pubs, err := tn.AuthorizeDNS(tc.upn, tc.app, tc.qname)
			if tc.reason == "" {
				if err != nil || len(pubs) != 1 || pubs[0] != "pub1" {
					t.Fatalf("got %v, %v; want [pub1]", pubs, err)
				}
				return
			}
			var d *DenyError
			if !errors.As(err, &d) || d.Reason != tc.reason {
				t.Fatalf("got %v, want reason %s", err, tc.reason)
			}
		})
	}
}

// Every config a valid tenant hands out compiles on the agent.
func TestDemoConfigsCompile(t *testing.T) {
	tn := loadDemo(t)
	for _, u := range tn.Users {
		cfg, err := tn.AgentConfig(u.UPN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := steering.Compile(&cfg.Steering); err != nil {
			t.Errorf("%s: %v", u.UPN, err)
		}
	}
}

// TestSecureExampleTenant: the documented example loads, and its secrets do
// what its comments say.
func TestSecureExampleTenant(t *testing.T) {
	tn, err := Load("../../testdata/tenants/secure.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(tn.User("alice@secure.test").PasswordHash), []byte("alice-demo-password")); err != nil {
		t.Errorf("alice's password: %v", err)
	}
	if u := tn.userKeys[keyHash("bob-invitation-key-2f7a90c1e35d")]; u == nil || u.UPN != "bob@secure.test" {
		t.Errorf("bob's invitation key: %v", u)
	}
	now := date(2026, 11, 23)
	if set, e := tn.checkEnrollAuth("secure-auth-token-q4-a51c0e97", true, now); e != nil || set.EncryptionToken == "" {
		t.Errorf("current set: %v %v", set, e)
	}
	if _, e := tn.checkEnrollAuth("secure-auth-token-q3-e0f4a6b2", true, now); e == nil || e.Reason != tenantapi.ReasonAuthTokenRevoked {
		t.Errorf("revoked set: %v", e)
	}
	if _, e := tn.checkEnrollAuth("", true, now); e == nil || e.Status != 405 {
		t.Errorf("enforced without token: %v", e)
	}
}
