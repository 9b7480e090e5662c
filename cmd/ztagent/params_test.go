package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestParamsFiles: the files the packages pass, with the MSI's names, in the
// shell-sourceable form; precedence command line > environment > later file >
// earlier file.
func TestParamsFiles(t *testing.T) {
	defaults := writeFile(t, "default", "# ztagent\nhost=old.example.com\nupn=\ntoken='org-key-from-default-0001'\n")
	params := writeFile(t, "install.params", "\n HOST = tenant.example.com\ninstallmode=IDP\ntenant=Acme\ndomain=acme.example\n"+
		"mode=peruserconfig\nprelogonuser=prelogon@acme.example\nenrollauthtoken=\"auth-token-0001\"\n")
	env := map[string]string{"ZTAGENT_ENROLLAUTHTOKEN": "auth-token-from-env"}
	src := paramSources{files: []string{defaults, params}, getenv: func(k string) string { return env[k] }}
	dir := t.TempDir()
	p, err := installParams(dir, []string{"tenant=beta"}, src)
	if err != nil {
		t.Fatal(err)
	}
	if p.Host != "tenant.example.com" || p.InstallMode != "IDP" || p.Tenant != "beta" || p.Domain != "acme.example" ||
		p.Mode != "peruserconfig" || p.PreLogonUser != "prelogon@acme.example" || p.UPN != "" {
		t.Fatalf("params %v", p)
	}
	if !p.Token.Equal("org-key-from-default-0001") || !p.EnrollAuthToken.Equal("auth-token-from-env") {
		t.Fatalf("secrets: token %v auth %v", p.Token, p.EnrollAuthToken)
	}
	back, err := installParams(dir, nil, noSources)
	if err != nil || back.String() != p.String() {
		t.Fatalf("saved %v, %v; want %v", back, err, p)
	}
}

func TestParamsFileErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown key", "host=h.example.com\nhots=x\n", ":2: unknown parameter \"hots\""},
		{"not key=value", "host=h.example.com\nsecret-without-key\n", ":2: not key=value"},
		{"bad value", "installmode=saml\n", "installmode="},
		{"twice", "host=a.example.com\n#\nHOST=b.example.com\n", ":3: host= given twice (first on line 1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFile(t, "p", tc.body)
			_, err := installParams(t.TempDir(), nil, paramSources{files: []string{f}, getenv: noSources.getenv})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-without-key") {
				t.Fatalf("error echoes the line: %v", err)
			}
		})
	}
	if _, err := installParams(t.TempDir(), nil, paramSources{files: []string{"/nonexistent/p"}, getenv: noSources.getenv}); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestCommandLineTwice: within the command line a key is given once, as
// before there were files.
func TestCommandLineTwice(t *testing.T) {
	_, err := installParams(t.TempDir(), []string{"host=a.example.com", "HOST=b.example.com"}, noSources)
	if err == nil || !strings.Contains(err.Error(), "host= given twice") {
		t.Fatalf("err = %v", err)
	}
}

// TestIgnoreEmpty: the MSI passes every property, set or not.
func TestIgnoreEmpty(t *testing.T) {
	args := []string{"host=tenant.example.com", "token=org-key-0123456789", "upn=", "tenant=", "mode="}
	if _, err := installParams(t.TempDir(), args, noSources); err == nil {
		t.Fatal("empty values accepted without --ignore-empty")
	}
	src := noSources
	src.ignoreEmpty = true
	p, err := installParams(t.TempDir(), args, src)
	if err != nil || p.Host != "tenant.example.com" || p.UPN != "" {
		t.Fatalf("%v, %v", p, err)
	}
}

// TestNoParamsKeepsSaved: installing again with empty files (an upgrade
// whose template was never filled in) keeps the saved parameters.
func TestNoParamsKeepsSaved(t *testing.T) {
	dir := t.TempDir()
	if _, err := installParams(dir, []string{"host=tenant.example.com", "upn=bob@example.com"}, noSources); err != nil {
		t.Fatal(err)
	}
	empty := writeFile(t, "default", "# host=\nhost=\n")
	p, err := installParams(dir, nil, paramSources{files: []string{empty}, getenv: noSources.getenv})
	if err != nil || p.UPN != "bob@example.com" {
		t.Fatalf("%v, %v", p, err)
	}
}

// FuzzParamsFile: any file is read without panicking, and an error never
// holds what follows a '=' (a value may be a secret).
func FuzzParamsFile(f *testing.F) {
	f.Add("host=h.example.com\ntoken='s3cret-value'\n# c\n\nupn=a@b.c\n")
	f.Add("hots=s3cret-value\n")
	f.Add("s3cret-value\n")
	f.Add("installmode=s3cret-value\n")
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(t.TempDir(), "p")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		kv, err := readParamsFile(p)
		if err != nil {
			if strings.Contains(body, "=s3cret-value") && strings.Contains(err.Error(), "s3cret-value") {
				t.Fatalf("error shows a value: %v", err)
			}
			return
		}
		for _, e := range kv {
			if e[1] == "" || strings.ContainsRune(e[0], '=') {
				t.Fatalf("entry %q", e)
			}
		}
	})
}
