package enroll

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCommandLineSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), mode)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orgKey := write("org.key", "org-key-from-file-0123456789\n", 0o600)
	authTok := write("auth.token", "auth-token-from-file-0123\n", 0o600)
	open := write("open.key", "org-key-everyone-reads-0000\n", 0o644)
	env := map[string]string{
		"ZTAGENT_ENROLLENCRYPTIONTOKEN": "enc-token-from-env-0123",
		"ZTAGENT_USERKEY":               "@" + authTok,
		"ZTAGENT_TOKEN":                 "org-key-from-env-00000000",
	}
	getenv := func(k string) string { return env[k] }

	p, err := ParseCommandLine([]string{"host=tenant.example.com", "token=@" + orgKey, "enrollauthtoken=plain-auth-token-0123"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case !p.Token.Equal("org-key-from-file-0123456789"):
		t.Errorf("token=@file: %q", string(p.Token))
	case !p.EnrollAuthToken.Equal("plain-auth-token-0123"):
		t.Errorf("plain form: %q", string(p.EnrollAuthToken))
	case !p.EnrollEncryptionToken.Equal("enc-token-from-env-0123"):
		t.Errorf("from the environment: %q", string(p.EnrollEncryptionToken))
	case !p.UserKey.Equal("auth-token-from-file-0123"):
		t.Errorf("environment naming a file: %q", string(p.UserKey))
	}

	refusals := []struct {
		name string
		args []string
		env  map[string]string
		msg  string
	}{
		{"world-readable file", []string{"host=h.example", "token=@" + open}, nil, "parameter token=: secret file " + open + " is readable by every user"},
		{"missing file", []string{"host=h.example", "userkey=@/nonexistent/key"}, nil, "parameter userkey=: secret file"},
		{"bad file in the environment", []string{"host=h.example"}, map[string]string{"ZTAGENT_TOKEN": "@" + open}, "ZTAGENT_TOKEN: secret file"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCommandLine(tc.args, func(k string) string { return tc.env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "everyone-reads") {
				t.Fatalf("got %v, want %q", err, tc.msg)
			}
		})
	}

	// The command line wins over the environment; no parameters read nothing.
	p, err = ParseCommandLine([]string{"token=org-key-on-the-command-line"}, getenv)
	if err != nil || !p.Token.Equal("org-key-on-the-command-line") {
		t.Errorf("command line vs environment: %q, %v", string(p.Token), err)
	}
	if p, err := ParseCommandLine(nil, getenv); err != nil || p != (Params{}) {
		t.Errorf("no parameters: %v, %v", p, err)
	}
	// A persisted secret that begins with '@' is not a path: only command lines are resolved.
	if p, err := ParseParams([]string{"token=@literal-org-key-0123456"}); err != nil || !p.Token.Equal("@literal-org-key-0123456") {
		t.Errorf("ParseParams resolved a file: %v", err)
	}
}

func TestSecretEnvVar(t *testing.T) {
	var got []string
	for _, k := range SecretParamKeys() {
		got = append(got, SecretEnvVar(k))
	}
	if want := "ZTAGENT_TOKEN ZTAGENT_ENROLLAUTHTOKEN ZTAGENT_ENROLLENCRYPTIONTOKEN ZTAGENT_USERKEY"; strings.Join(got, " ") != want {
		t.Fatalf("%v", got)
	}
}
