package platform

import (
	"path/filepath"
	"testing"
)

func TestLogDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		goos string
		env  map[string]string
		want string
	}{
		{"linux", nil, "/var/log/ztagent"},
		{"darwin", nil, "/Library/Logs/ztagent"},
		{"windows", map[string]string{"ProgramData": `D:\PD`}, filepath.Join(`D:\PD`, "ztagent", "logs")},
		{"windows", nil, `C:\ProgramData\ztagent\logs`},
	}
	for _, tc := range cases {
		t.Run(tc.goos, func(t *testing.T) {
			if got := logDir(tc.goos, env(tc.env)); got != tc.want {
				t.Fatalf("logDir(%s) = %q, want %q", tc.goos, got, tc.want)
			}
		})
	}
	t.Setenv("ZTAGENT_LOG_DIR", "/tmp/lab/logs")
	if got := DefaultLogDir(); got != "/tmp/lab/logs" {
		t.Fatalf("with ZTAGENT_LOG_DIR: %q", got)
	}
}
