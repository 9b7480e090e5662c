package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

// TestBundle: the bundle holds every part, the log's newest lines, and no
// secret even if one had reached the log; anonymized, no user name or stub
// host name.
func TestBundle(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "ztagent.log")
	leak := "2026-11-30T08:00:00Z\tinfo\tsomething that leaked token=" + fakeOrgKey + "\n"
	if err := os.WriteFile(logFile, []byte(strings.Repeat("old line\n", 1000)+leak+"newest line user alice@test.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newFakeAgent(t, "", func(c *Config) {
		c.Logs = &fakeLogs{level: zapcore.InfoLevel, file: logFile, maxMB: 10}
		c.Version = "1.2.3"
	})
	a.start(t)
	waitStatus(t, a.Agent, "running", running)

	b := a.bundle(false)
	files := map[string]string{}
	for _, f := range b.Files {
		files[f.Name] = f.Data
	}
	for _, name := range []string{"version.json", "status.json", "settings.json", "config.json", "routes.json", "stubs.json", "resolver.json", "logs/ztagent.log"} {
		if files[name] == "" {
			t.Errorf("bundle lacks %s (has %d files)", name, len(b.Files))
		}
	}
	for name, data := range files {
		if strings.Contains(data, fakeOrgKey) {
			t.Errorf("%s holds the org key", name)
		}
		if name != "logs/ztagent.log" && !json.Valid([]byte(data)) {
			t.Errorf("%s is not JSON: %.200s", name, data)
		}
	}
	if !strings.Contains(files["logs/ztagent.log"], "token=[redacted]") || !strings.Contains(files["logs/ztagent.log"], "newest line") {
		t.Errorf("log in the bundle: %.300s", files["logs/ztagent.log"])
	}
	if !strings.Contains(files["version.json"], `"agent": "1.2.3"`) || !strings.Contains(files["config.json"], `"web.corp.test"`) {
		t.Errorf("version %s\nconfig %.300s", files["version.json"], files["config.json"])
	}

	anon := a.bundle(true)
	for _, f := range anon.Files {
		for _, gone := range []string{"alice", "test.example", "web.corp.test"} {
			if strings.Contains(f.Data, gone) {
				t.Errorf("anonymized %s holds %q", f.Name, gone)
			}
		}
	}
}

func TestTail(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("first\nsecond\nthird\n"), 0o600)
	for _, tc := range []struct {
		n    int64
		want string
	}{{100, "first\nsecond\nthird\n"}, {9, "third\n"}, {13, "second\nthird\n"}} {
		if got, err := tail(file, tc.n); err != nil || got != tc.want {
			t.Errorf("tail(%d) = %q, %v; want %q", tc.n, got, err, tc.want)
		}
	}
}
