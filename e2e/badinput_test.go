//go:build linux

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput checks that each operator mistake gives one clear error naming
// the cause and the fix, a non-zero exit, and leaves nothing half-configured.
func TestBadInput(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	before := l.clientNetState()
	ca := filepath.Join(l.dir, "cloud", "ca.pem")

	agent := func(t *testing.T, params ...string) (string, int) {
		state := t.TempDir()
		args := append([]string{"timeout", "90", l.bin("ztagent"), "run",
			"--state-dir", state, "--socket", filepath.Join(state, "sock"), "--log-dir", filepath.Join(state, "logs")}, params...)
		return l.run("client", args...)
	}
	cases := []struct {
		name   string
		params []string
		want   string
	}{
		{"wrong org key", []string{"host=10.10.0.1:8444", "token=not-the-key", "upn=alice@demo.test", "cacert=" + ca}, "org key"},
		{"unknown user", []string{"host=10.10.0.1:8444", "token=demo-org-key-8c1f4e27b9d35a60", "upn=mallory@demo.test", "cacert=" + ca}, "mallory@demo.test"},
		{"unreachable tenant", []string{"host=10.10.0.99:8444", "token=demo-org-key-8c1f4e27b9d35a60", "upn=alice@demo.test", "cacert=" + ca}, "cannot reach"},
		{"untrusted tenant certificate", []string{"host=10.10.0.1:8444", "token=demo-org-key-8c1f4e27b9d35a60", "upn=alice@demo.test"}, "cacert="},
		{"unknown parameter", []string{"hots=10.10.0.1:8444"}, "hots"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := agent(t, tc.params...)
			if code == 0 || code == 124 {
				t.Fatalf("exit %d, want a prompt failure; output:\n%s", code, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("error does not mention %q:\n%s", tc.want, out)
			}
			if strings.Contains(out, "demo-org-key-8c1f4e27b9d35a60") {
				t.Fatalf("the org key leaked into the output:\n%s", out)
			}
			if after := l.clientNetState(); after != before {
				t.Fatalf("client namespace changed:\nbefore: %+v\nafter:  %+v", before, after)
			}
		})
	}

	t.Run("tenant API port in use", func(t *testing.T) {
		// dnsmasq holds 10.10.0.1:53 in the cloud namespace.
		out, code := l.run("cloud", "timeout", "30", l.bin("ztcloud"), "serve", "--tenant",
			filepath.Join(l.root, "testdata/tenants/demo.yaml"), "--state", t.TempDir(), "--api", "10.10.0.1:53", "--pop", "10.10.0.1:0")
		if code == 0 || code == 124 || !strings.Contains(out, "already in use") {
			t.Fatalf("exit %d, want 'already in use':\n%s", code, out)
		}
	})

	t.Run("second agent on the same control socket", func(t *testing.T) {
		l.script("agent-start")
		defer l.script("agent-stop")
		out, code := l.run("client", "timeout", "30", l.bin("ztagent"), "run", "--state-dir", t.TempDir(),
			"--socket", l.sock(), "--log-dir", t.TempDir(), "host=10.10.0.1:8444", "token=x", "upn=alice@demo.test")
		if code == 0 || code == 124 || !strings.Contains(out, "another ztagent is running") {
			t.Fatalf("exit %d, want 'another ztagent is running':\n%s", code, out)
		}
	})
}
