package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/cmd/internal/cli"
)

// noSources: the command line alone, with an empty environment.
var noSources = paramSources{getenv: func(string) string { return "" }}

func TestInstallParamsPersist(t *testing.T) {
	dir := t.TempDir()
	p, err := installParams(dir, []string{"host=tenant.example.com", "token=org-key-0123456789abcdef", "upn=alice@example.com"}, noSources)
	if err != nil {
		t.Fatal(err)
	}
	// The service runs with no parameters and reads them back.
	back, err := installParams(dir, nil, noSources)
	if err != nil {
		t.Fatal(err)
	}
	if back.Host != p.Host || back.UPN != p.UPN || !back.Token.Equal("org-key-0123456789abcdef") {
		t.Fatalf("read back %v, want %v", back, p)
	}
	if _, err := installParams(t.TempDir(), []string{"hots=x"}, noSources); err == nil || !strings.Contains(err.Error(), "hots") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestServiceRunsWithInstallFlags(t *testing.T) {
	o, err := parse("install", []string{"--state-dir", "/tmp/zt", "--tun", "zt9", "--log-level", "debug", "host=h"})
	if err != nil {
		t.Fatal(err)
	}
	args := serviceConfig(o).Arguments
	want := []string{"run", "--state-dir", "/tmp/zt", "--socket", o.socket, "--tun", "zt9", "--mtu", "0", "--log-level", "debug",
		"--log-dir=" + o.logDir, "--log-max-mb", "10", "--log-keep", "5"}
	if !slices.Equal(args, want) {
		t.Fatalf("service arguments %q, want %q", args, want)
	}
	if !slices.Equal(o.params, []string{"host=h"}) {
		t.Fatalf("params %q", o.params)
	}
}

func TestUnknownCommand(t *testing.T) {
	if err := run([]string{"start"}); err == nil || !strings.Contains(err.Error(), "start") {
		t.Fatalf("err = %v", err)
	}
}

// TestInstallParamsSecretFromFile: token=@FILE persists the secret, not the
// path, so the service does not depend on the file later.
func TestInstallParamsSecretFromFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(t.TempDir(), "org.key")
	if err := os.WriteFile(key, []byte("org-key-from-a-file-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := installParams(dir, []string{"host=tenant.example.com", "token=@" + key}, noSources); err != nil {
		t.Fatal(err)
	}
	os.Remove(key)
	back, err := installParams(dir, nil, noSources)
	if err != nil || !back.Token.Equal("org-key-from-a-file-0123") {
		t.Fatalf("read back %v, %v", back, err)
	}
}

func TestMTUFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		arg  string
		ok   bool
	}{
		{"follow the uplink", "0", true},
		{"IPv6 minimum", "1280", true},
		{"largest", "65535", true},
		{"below the IPv6 minimum", "1200", false},
		{"above an IP packet", "65536", false},
		{"negative", "-1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse("run", []string{"--mtu", tc.arg})
			if (err == nil) != tc.ok {
				t.Fatalf("--mtu %s: err %v, want ok %v", tc.arg, err, tc.ok)
			}
		})
	}
}

// TestHelpAndUsageStatus: help, for the binary and each command, is not an
// error (exit status 0); an unknown command or flag is a usage error (2).
func TestHelpAndUsageStatus(t *testing.T) {
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, cli.ExitOK},
		{[]string{"-h"}, cli.ExitOK},
		{[]string{"help"}, cli.ExitOK},
		{[]string{"run", "--help"}, cli.ExitOK},
		{[]string{"install", "-h"}, cli.ExitOK},
		{[]string{"uninstall", "--help"}, cli.ExitOK},
		{[]string{"version"}, cli.ExitOK},
		{nil, cli.ExitUsage},
		{[]string{"start"}, cli.ExitUsage},
		{[]string{"run", "--bogus"}, cli.ExitUsage},
		{[]string{"run", "--mtu", "x"}, cli.ExitUsage},
		{[]string{"run", "--log-max-mb", "0"}, cli.ExitUsage},
		{[]string{"run", "--log-keep", "-1"}, cli.ExitUsage},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if got := cli.Code(run(tc.args)); got != tc.code {
				t.Fatalf("ztagent %q: exit status %d, want %d", tc.args, got, tc.code)
			}
		})
	}
}
