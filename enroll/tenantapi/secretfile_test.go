package tenantapi

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return "@" + p
	}
	const secret = "org-key-0123456789abcdef"
	tests := []struct {
		name, value string
		want        string // "" = refused
		msg         string // substring of the refusal
	}{
		{"plain value", secret, secret, ""},
		{"file", file("ok", secret+"\n", 0o600), secret, ""},
		{"file with CRLF and spaces", file("crlf", "  "+secret+"\r\n", 0o600), secret, ""},
		{"group-readable file", file("group", secret, 0o640), secret, ""},
		{"world-readable file", file("world", secret, 0o644), "", "readable by every user (mode 0644)"},
		{"empty file", file("empty", "\n", 0o600), "", "is empty"},
		{"two lines", file("two", secret+"\nsecond\n", 0o600), "", "more than one line"},
		{"too large", file("large", strings.Repeat("x", maxSecretFile+1), 0o600), "", "larger than"},
		{"missing file", "@" + filepath.Join(dir, "nope"), "", "no such file"},
		{"no path", "@", "", "must be followed by the path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && tc.name == "world-readable file" {
				t.Skip("modes do not say who may read a file on Windows")
			}
			got, err := ReadSecret(tc.value)
			switch {
			case tc.want != "" && (err != nil || string(got) != tc.want):
				t.Fatalf("got %q, %v", got, err)
			case tc.want == "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
				t.Fatalf("got %q, %v; want a refusal with %q", got, err, tc.msg)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}
