package main

import (
	"os"
	"path/filepath"
	"testing"
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
