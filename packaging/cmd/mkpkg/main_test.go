package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no format", []string{"-version", "1.0.0", "-bin", "."}, "required"},
		{"unknown format", []string{"-format", "apk", "-version", "1.0.0", "-bin", ".", "-out", t.TempDir()}, `unknown format "apk"`},
		{"msi for arm64", []string{"-format", "msi", "-arch", "arm64", "-version", "1.0.0", "-bin", ".", "-out", t.TempDir()}, "only windows/amd64"},
		{"missing binaries", []string{"-format", "pkg", "-version", "1.0.0", "-bin", t.TempDir(), "-out", t.TempDir()}, "ztagent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := run(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRunBuildsPkg: one format end to end through the command (the pkg
// needs no external tool).
func TestRunBuildsPkg(t *testing.T) {
	bin, out := t.TempDir(), t.TempDir()
	for _, b := range []string{"ztagent", "ztdiag"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte(b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := run([]string{"-format", "pkg", "-arch", "amd64", "-version", "1.0.0", "-bin", bin, "-out", out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "ztagent-1.0.0-darwin-amd64.pkg")); err != nil {
		t.Fatal(err)
	}
}
