package enroll

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/platform"
)

func TestMergeParams(t *testing.T) {
	install, err := ParseParams([]string{"host=install.example", "token=install-org-key-000000", "upn=alice@demo.test"})
	if err != nil {
		t.Fatal(err)
	}
	const path = "/etc/ztagent/mdm.json"
	tests := []struct {
		name    string
		mdm     map[string]string
		want    map[string][2]string // key → value, source
		key     string               // of the *SettingError
		why     string
		noLeaks string
	}{
		{name: "no mdm", want: map[string][2]string{"host": {"install.example", "install"},
			"token": {"[redacted]", "install"}, "upn": {"alice@demo.test", "install"}, "tenant": {"", "default"}}},
		{name: "mdm wins", mdm: map[string]string{"host": "mdm.example", "Tenant": "Demo", "enrollauthtoken": "mdm-auth-token-0000000",
			"PayloadVersion": "1"},
			want: map[string][2]string{"host": {"mdm.example", "mdm:" + path}, "tenant": {"demo", "mdm:" + path},
				"enrollauthtoken": {"[redacted]", "mdm:" + path}, "upn": {"alice@demo.test", "install"},
				"installmode": {"", "default"}}},
		{name: "unknown key", mdm: map[string]string{"hots": "x"}, key: "hots", why: "unknown key (valid keys: host, token"},
		{name: "bad value", mdm: map[string]string{"installmode": "SAML"}, key: "installmode", why: `"SAML" is not one of IDP`},
		{name: "bad host", mdm: map[string]string{"host": "http://x.example"}, key: "host", why: "https only"},
		{name: "empty secret", mdm: map[string]string{"token": ""}, key: "token", why: "invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, settings, err := MergeParams(install, tc.mdm, path)
			if tc.why != "" {
				var se *SettingError
				if !errors.As(err, &se) || se.Source != "mdm:"+path || se.Key != tc.key || !strings.Contains(se.Reason, tc.why) {
					t.Fatalf("err = %v, want key %s reason %q", err, tc.key, tc.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(settings) != len(ValidParamKeys()) {
				t.Errorf("%d settings, want one per key", len(settings))
			}
			got := map[string][2]string{}
			for _, s := range settings {
				got[s.Key] = [2]string{s.Value, s.Source}
				if strings.Contains(s.Value, "token-0") || strings.Contains(s.Value, "org-key") {
					t.Errorf("setting %s shows a secret", s.Key)
				}
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %v, want %v", k, got[k], w)
				}
			}
			if tc.mdm["host"] != "" && p.Host != tc.mdm["host"] {
				t.Errorf("effective host = %s", p.Host)
			}
			if p.Token != install.Token {
				t.Error("install token lost")
			}
		})
	}
}

// TestMergeMDMFile runs the Linux MDM file from testdata through the platform
// source and the merge.
func TestMergeMDMFile(t *testing.T) {
	var src platform.MDMSource = platform.NewJSONMDMSource(filepath.Join("..", "testdata", "mdm", "mdm.json"))
	mdm, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	p, settings, err := MergeParams(Params{UPN: "bob@demo.test"}, mdm, src.Path())
	if err != nil {
		t.Fatal(err)
	}
	if p.Host != "tenant.example.com" || p.InstallMode != "IDP" || p.UPN != "bob@demo.test" ||
		p.EnrollAuthToken != "auth-token-from-mdm-abcdef" {
		t.Errorf("effective params = %v", p)
	}
	for _, s := range settings {
		if s.Key == "token" && (s.Value != "[redacted]" || s.Source != "mdm:"+src.Path()) {
			t.Errorf("token setting = %+v", s)
		}
	}
	src = platform.NewPlistMDMSource(filepath.Join("..", "testdata", "mdm", "com.ztagent.agent.plist"))
	if mdm, err = src.Load(); err != nil {
		t.Fatal(err)
	}
	if p, _, err = MergeParams(Params{}, mdm, src.Path()); err != nil || p.InstallMode != "IDP" {
		t.Errorf("plist: %v %v", p, err)
	}
}
