package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/cloud/tenant"
)

func TestServeRejectsBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	demo := filepath.Join("..", "..", "testdata", "tenants", "demo.yaml")
	broken := filepath.Join("..", "..", "testdata", "tenants", "broken-values.yaml")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"broken tenant file", []string{"serve", "--tenant", broken}, []string{"broken-values.yaml"}},
		{"missing tenant file", []string{"serve", "--tenant", "/nonexistent/t.yaml"}, []string{"/nonexistent/t.yaml"}},
		{"API port in use", []string{"serve", "--tenant", demo, "--api", busy.Addr().String(), "--pop", "127.0.0.1:0"}, []string{busy.Addr().String(), "already in use"}},
		{"PoP port in use", []string{"serve", "--tenant", demo, "--api", "127.0.0.1:0", "--pop", busy.Addr().String()}, []string{"PoP", "already in use"}},
		{"unknown role", []string{"serve", "--tenant", demo, "--roles", "tenant,gw"}, []string{`"gw"`}},
		{"gateway without l3e", []string{"gateway", "--tenant", demo, "--gateway", "127.0.0.1:0"}, []string{"l3e section"}},
		{"check broken", []string{"check", "--tenant", broken}, []string{"broken-values.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			args := append(tc.args, "--state", state)
			if tc.args[0] == "check" {
				args = tc.args
			}
			err := run(context.Background(), args)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// A failed start creates no CA unless it got past loading the file.
			if strings.Contains(tc.name, "tenant file") {
				if entries, _ := os.ReadDir(state); len(entries) != 0 {
					t.Errorf("state directory not empty after a failed start: %v", entries)
				}
			}
		})
	}
}

// TestCheckWarnsOfACutOffFile: a tenant file cut off before its policy:
// section is valid, and denies all access: check says so.
func TestCheckWarnsOfACutOffFile(t *testing.T) {
	demo, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tenants", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.yaml")
	if err := os.WriteFile(cut, demo[:strings.Index(string(demo), "\npolicy:")+1], 0o600); err != nil {
		t.Fatal(err)
	}
	tn, err := tenant.Load(cut)
	if err != nil {
		t.Fatalf("the cut file is valid: %v", err)
	}
	var out strings.Builder
	printCheck(&out, cut, tn)
	for _, want := range []string{`is valid, with 1 warning(s)`, "warning: policy: no rule: every flow is denied",
		"was the file cut off before its policy: section?"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check printed %q, want %q", out.String(), want)
		}
	}
	if err := run(context.Background(), []string{"check", "--tenant", cut}); err != nil {
		t.Errorf("a warning failed the check: %v", err)
	}
}

// TestPublisherTokenFile: --token @FILE refuses a file every user can read,
// before anything else happens; $ZTCLOUD_PUBLISHER_TOKEN may name a file too.
func TestPublisherTokenFile(t *testing.T) {
	open := filepath.Join(t.TempDir(), "pub.token")
	if err := os.WriteFile(open, []byte("pub1-token-0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644)
	args := []string{"publisher", "--name", "pub1", "--tenant-url", "https://127.0.0.1:1", "--state", t.TempDir()}
	err := run(context.Background(), append(args, "--token", "@"+open))
	if err == nil || !strings.Contains(err.Error(), "--token: secret file "+open+" is readable by every user") {
		t.Fatalf("world-readable --token file: %v", err)
	}
	t.Setenv(publisherTokenEnv, "@"+open)
	if err := run(context.Background(), args); err == nil || !strings.Contains(err.Error(), "$ZTCLOUD_PUBLISHER_TOKEN: secret file") {
		t.Fatalf("world-readable file in the environment: %v", err)
	}
}
