package enroll

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseParams(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want Params
		err  string // substring; "" means success
	}{
		{"minimal", []string{"host=tenant.example.com", "token=k", "upn=a@b.c"},
			Params{Host: "tenant.example.com", Token: "k", UPN: "a@b.c"}, ""},
		{"upper-case keys and spaces", []string{"HOST = 10.10.0.1:8444", "Token=k"},
			Params{Host: "10.10.0.1:8444", Token: "k"}, ""},
		{"value with equals", []string{"token=a=b"}, Params{Token: "a=b"}, ""},
		{"all keys", []string{"host=https://t.example/ztna", "token=k", "upn=u@d", "cacert=/etc/ca.pem",
			"enrollauthtoken=a", "enrollencryptiontoken=e", "installmode=idp", "tenant=Demo",
			"domain=Corp.Example.", "mode=PerUserConfig", "prelogonuser=svc@d", "userkey=x"},
			Params{Host: "https://t.example/ztna", Token: "k", UPN: "u@d", CACert: "/etc/ca.pem",
				EnrollAuthToken: "a", EnrollEncryptionToken: "e", InstallMode: "IDP", Tenant: "demo",
				Domain: "corp.example", Mode: "peruserconfig", PreLogonUser: "svc@d", UserKey: "x"}, ""},
		{"unknown key", []string{"tokn=secret-value"}, Params{}, `unknown parameter "tokn" (valid keys: host, token, upn`},
		{"no equals", []string{"secret-value"}, Params{}, "parameter 1 is not key=value"},
		{"duplicate", []string{"upn=a@b", "UPN=c@d"}, Params{}, "parameter upn= given twice"},
		{"empty token", []string{"token="}, Params{}, "parameter token=: empty"},
		{"http host", []string{"host=http://t.example"}, Params{}, "https only"},
		{"host with query", []string{"host=https://t.example/?a=b"}, Params{}, "no user, query or fragment"},
		{"bad port", []string{"host=t.example:70000"}, Params{}, `invalid port "70000"`},
		{"bad upn", []string{"upn=alice"}, Params{}, "not a UPN"},
		{"bad installmode", []string{"installmode=saml"}, Params{}, `"saml" is not one of IDP`},
		{"bad mode", []string{"mode=shared"}, Params{}, "is not one of peruserconfig"},
		{"bad domain", []string{"domain=10.0.0.1"}, Params{}, "not a DNS domain"},
		{"wildcard domain", []string{"domain=*.corp.example"}, Params{}, "not a DNS domain"},
		{"numeric last label", []string{"domain=corp.123"}, Params{}, "not a DNS domain"},
		{"bad tenant", []string{"tenant=a b"}, Params{}, "not a tenant name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseParams(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret-value") {
					t.Errorf("error echoes a value that may be a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestParamsRedactSecrets(t *testing.T) {
	p, err := ParseParams([]string{"host=t.example", "token=org-secret", "enrollauthtoken=auth-secret",
		"enrollencryptiontoken=enc-secret", "userkey=user-secret", "upn=a@b"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "host=t.example token=[redacted] upn=a@b enrollauthtoken=[redacted] " +
		"enrollencryptiontoken=[redacted] userkey=[redacted]"
	if p.String() != want {
		t.Errorf("String() = %q\nwant       %q", p.String(), want)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, p); strings.Contains(s, "secret") {
			t.Errorf("%s leaks a secret: %s", f, s)
		}
	}
}

func TestTenantURL(t *testing.T) {
	for host, want := range map[string]string{
		"t.example":                 "https://t.example",
		"10.10.0.1:8444":            "https://10.10.0.1:8444",
		"https://10.10.0.1:8444/":   "https://10.10.0.1:8444",
		"https://t.example/ztna/":   "https://t.example/ztna",
		"[fd00::1]:8444":            "https://[fd00::1]:8444",
		"HTTPS://T.example:443/x/y": "https://T.example:443/x/y",
	} {
		got, err := Params{Host: host}.TenantURL()
		if err != nil || got != want {
			t.Errorf("TenantURL(%q) = %q, %v; want %q", host, got, err, want)
		}
	}
	if _, err := (Params{}).TenantURL(); err == nil || !strings.Contains(err.Error(), "host= is not set") {
		t.Errorf("empty host: %v", err)
	}
}
