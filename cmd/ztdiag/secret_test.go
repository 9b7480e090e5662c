package main

import (
	"errors"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/enroll"
)

func TestSecretKeysAreTheAgents(t *testing.T) {
	var keys []string
	for k := range secretKeys {
		keys = append(keys, k)
	}
	want := enroll.SecretParamKeys()
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("ztdiag's secret keys %v, the agent's %v", keys, want)
	}
}

func TestReadSecretArgs(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "auth.token")
	os.WriteFile(tok, []byte("auth-token-in-a-file-0123\n"), 0o600)
	open := filepath.Join(dir, "open.token")
	os.WriteFile(open, []byte("auth-token-everyone-reads\n"), 0o644)
	os.Chmod(open, 0o644)

	got, err := readSecretArgs([]string{"enrollauthtoken=@" + tok, "upn=alice@example.com", "cacert=@not-a-secret"})
	if err != nil || !slices.Equal(got, []string{"enrollauthtoken=auth-token-in-a-file-0123", "upn=alice@example.com", "cacert=@not-a-secret"}) {
		t.Fatalf("got %q, %v", got, err)
	}
	_, err = readSecretArgs([]string{"EnrollAuthToken=@" + open})
	var ee *cli.Error
	if !errors.As(err, &ee) || ee.Code != 2 || !strings.Contains(err.Error(), "readable by every user") || strings.Contains(err.Error(), "everyone-reads") {
		t.Fatalf("world-readable file: %v", err)
	}
}
