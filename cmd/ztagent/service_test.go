package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRemoveSysVLinks: the links kardianos/service makes for System V init
// go; another service's links, and a file of the same name that is not a
// link to ztagent's script, stay.
func TestRemoveSysVLinks(t *testing.T) {
	root := t.TempDir()
	mk := func(rel, target string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := []string{mk("etc/rc2.d/S50ztagent", "/etc/init.d/ztagent"), mk("etc/rc6.d/K02ztagent", "/etc/init.d/ztagent")}
	kept := []string{mk("etc/rc2.d/S50other", "/etc/init.d/other"), mk("etc/rc3.d/S50ztagent", "/etc/init.d/ztagent-old")}
	removeSysVLinks(root, "ztagent")
	for _, p := range gone {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s kept", p)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

// The options reach every service manager's kardianos/service backend under
// the names it reads: a misspelt key would be silently ignored.
func TestServiceConfigRestarts(t *testing.T) {
	o := &options{stateDir: "/s", socket: "/c", tunName: "zt0", mtu: 1280}
	opt := serviceConfig(o).Option
	for key, want := range map[string]any{"Restart": "always", "KeepAlive": true, "RunAtLoad": true,
		"StartType": "automatic", "OnFailure": "restart", "OnFailureDelayDuration": "5s", "OnFailureResetPeriod": 60} {
		if got, ok := opt[key]; !ok || got != want {
			t.Errorf("option %s = %v, want %v", key, got, want)
		}
	}
	if d, err := time.ParseDuration(opt["OnFailureDelayDuration"].(string)); err != nil || d <= 0 {
		t.Errorf("OnFailureDelayDuration %v: %v", opt["OnFailureDelayDuration"], err)
	}
}
