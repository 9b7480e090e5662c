//go:build linux

package e2e

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/steering"
)

// plantedSecrets are the secure tenant's secrets (testdata/tenants/secure.yaml)
// and others the test gives the agent itself: none may appear in any log
// line, status, bundle or error message.
var plantedSecrets = map[string]string{
	"org key":               "secure-org-key-3c9e81d04f5a7b26",
	"enrollment auth token": "secure-auth-token-q4-a51c0e97",
	"encryption token":      "secure-enc-token-q4-7b3d12f8",
	"revoked auth token":    "secure-auth-token-q3-e0f4a6b2",
	"invitation user key":   "bob-invitation-key-2f7a90c1e35d",
	"wrong user key":        "planted-user-key-0f9e8d7c6b5a",
	"publisher token":       "secure-publisher-token-51e0b8a3",
	"admin token":           "secure-admin-token-8d1f6e0b27c4",
	"tamper password":       "planted-tamper-password-5e1d",
}

// secureTenant writes the secure tenant file with the lab's addresses and
// the planted tamper password's hash; it returns the file and the hash.
func secureTenant(t *testing.T) (string, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "tenants", "secure.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "api_url: https://tenant.secure.test:8444", "api_url: https://10.10.0.1:8444", 1)
	s = strings.Replace(s, "  address: pop.secure.test:8443", "  address: 10.10.0.1:8443", 1)
	hash, err := steering.HashTamperPassword(plantedSecrets["tamper password"])
	if err != nil {
		t.Fatal(err)
	}
	profile := "steering:\n  - name: everyone\n    users: [\"*\"]\n    apps: [web]\n"
	if !strings.Contains(s, profile) {
		t.Fatal("secure.yaml's steering profile changed: update the test")
	}
	s = strings.Replace(s, profile, profile+"    client:\n      tamper_password: "+hash+"\n", 1)
	file := filepath.Join(t.TempDir(), "secure.yaml")
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, hash
}

// TestNoSecretInLogsOrOutput runs the agent at debug level against the
// secure tenant, enrolled with an auth and an encryption token, drives it
// through flows, a sync, log changes and rejected re-enrollments with other
// planted secrets, and then looks for every planted secret in the agent's
// log files, its standard error, ztdiag's status (text, JSON, -f) and
// everything ztdiag printed, errors included.
func TestNoSecretInLogsOrOutput(t *testing.T) {
	requireE2E(t)
	tenantFile, tamperHash := secureTenant(t)
	secrets := map[string]string{"tamper password hash": tamperHash}
	for what, s := range plantedSecrets {
		secrets[what] = s
	}
	l := newLabEnv(t, map[string]string{
		"ZT_TENANT":   tenantFile,
		"ZT_UPN":      "alice@secure.test",
		"ZT_ORGKEY":   plantedSecrets["org key"],
		"ZT_PUBTOKEN": plantedSecrets["publisher token"],
	})
	l.script("agent-start", "--log-level", "debug",
		"enrollauthtoken="+plantedSecrets["enrollment auth token"],
		"enrollencryptiontoken="+plantedSecrets["encryption token"])
	t.Cleanup(func() { l.script("agent-stop") })
	l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")

	ztdiag := func(args ...string) (string, int) {
		return l.run("client", append([]string{l.bin("ztdiag"), "--socket", l.sock()}, args...)...)
	}
	var printed strings.Builder
	// record runs ztdiag and keeps what it printed, errors included.
	record := func(args ...string) int {
		out, code := ztdiag(args...)
		t.Logf("ztdiag %s: exit %d: %.300s", strings.Join(args, " "), code, out)
		printed.WriteString(out)
		return code
	}
	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"-f"}, {"--json", "-f"}, {"-n"}, {"-u"}} {
		if code := record(args...); code != 0 {
			t.Errorf("ztdiag %s: exit %d", strings.Join(args, " "), code)
		}
	}
	// Rejected re-enrollments: the tenant refuses each, and ztdiag prints
	// the agent's error.
	for _, args := range [][]string{
		{"-e", "enrollauthtoken=" + plantedSecrets["revoked auth token"]},
		{"-e", "userkey=" + plantedSecrets["wrong user key"]},
		{"-e", "token=" + plantedSecrets["admin token"]},
	} {
		if code := record(args...); code != 1 {
			t.Errorf("ztdiag -e with a wrong secret: exit %d, want 1 (refused)", code)
		}
	}
	l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")
	checkLogControl(t, l)
	// -t: turning steering off needs the tenant's password.
	for _, pw := range []string{"", "wrong-tamper-password-0000"} {
		if code := record("-t", "disable", "--password", pw); code != 4 {
			t.Errorf("-t disable --password %q: exit %d, want 4", pw, code)
		}
	}
	if code := record("-t", "disable", "--password", plantedSecrets["tamper password"]); code != 0 {
		t.Fatalf("-t disable with the password: exit %d", code)
	}
	if out, _ := ztdiag("-f"); !strings.Contains(out, "Client status:: Disabled (steering turned off") ||
		!strings.Contains(out, "Tamper Protection:: On: turning steering off needs") {
		t.Errorf("-f with steering off:\n%s", out)
	}
	if out, _ := ztdiag("match", "web.corp.test:80"); !strings.HasPrefix(out, "BYPASS") {
		t.Errorf("steering off, web.corp.test is still steered:\n%s", out)
	}
	if code := record("-t", "enable"); code != 0 {
		t.Fatalf("-t enable: exit %d", code)
	}
	// -r: a request timed as the agent steers it.
	out, code := ztdiag("-r", "http://web.corp.test/")
	printed.WriteString(out)
	if code != 0 || !strings.Contains(out, "Steering:: L7 tunnel (app web).") || !strings.Contains(out, "Status:: 200 OK.") ||
		!strings.Contains(out, "Remote address:: 100.64.") {
		t.Errorf("ztdiag -r http://web.corp.test/: exit %d\n%s", code, out)
	}

	searched := map[string]string{"ztdiag output": printed.String()}
	for _, anonymize := range []bool{false, true} {
		zipFile := filepath.Join(t.TempDir(), "bundle.zip")
		args := []string{"-o", zipFile}
		if anonymize {
			args = append(args, "--anonymize")
		}
		if code := record(args...); code != 0 {
			t.Fatalf("ztdiag -o: exit %d", code)
		}
		files := readZip(t, zipFile)
		for _, name := range []string{"status.json", "settings.json", "config.json", "routes.json", "stubs.json", "resolver.json", "version.json", "logs/ztagent.log"} {
			if files[name] == "" {
				t.Errorf("the bundle lacks %s", name)
			}
		}
		if !anonymize && !strings.Contains(files["status.json"], "alice@secure.test") {
			t.Error("the bundle's status.json does not name the user: the anonymized check would prove nothing")
		}
		for name, data := range files {
			searched[fmt.Sprintf("bundle (anonymized %v) %s", anonymize, name)] = data
			if anonymize && (strings.Contains(data, "alice") || strings.Contains(data, "web.corp.test") || strings.Contains(data, "10.10.0.2")) {
				t.Errorf("anonymized bundle's %s holds a user name, host name or private address", name)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(l.dir, "*.log"))
	rotated, _ := filepath.Glob(filepath.Join(l.dir, "agent-logs", "ztagent.log*"))
	if len(rotated) == 0 {
		t.Fatalf("no log file in %s", filepath.Join(l.dir, "agent-logs"))
	}
	for _, f := range append(files, rotated...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		searched[f] = string(b)
	}
	if !strings.Contains(searched[filepath.Join(l.dir, "agent-logs", "ztagent.log")], "\tdebug\t") {
		t.Fatal("the agent's log file has no debug line: the test did not run at debug level")
	}
	for where, text := range searched {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				i := strings.Index(text, secret)
				t.Errorf("%s holds the %s: …%s…", where, what, text[max(0, i-200):min(len(text), i+len(secret)+50)])
			}
		}
	}
}

// checkLogControl: the agent's log file has the events that matter; `ztdiag
// -l` changes the level at once (root only: nobody is refused with exit
// status 4); `ztdiag -m` the file's size.
func checkLogControl(t *testing.T, l *lab) {
	t.Helper()
	file := filepath.Join(l.dir, "agent-logs", "ztagent.log")
	read := func() string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, event := range []string{"enrollment complete", "config updated", "tunnel up", "flow steered"} {
		if !strings.Contains(read(), event) {
			t.Errorf("the agent's log file lacks %q", event)
		}
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	l.must("client", l.bin("ztdiag"), "--socket", l.sock(), "-l", "info")
	before := strings.Count(read(), "flow steered")
	l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")
	if n := strings.Count(read(), "flow steered"); n != before {
		t.Errorf("after ztdiag -l info, %d more debug lines", n-before)
	}
	out := l.must("client", l.bin("ztdiag"), "--socket", l.sock(), "-l", "debug", "-m", "2")
	if !strings.Contains(out, "Log level:: debug.") || !strings.Contains(out, "rotated at 2 MB") {
		t.Errorf("ztdiag -l debug -m 2 printed %q", out)
	}
	l.must("client", "curl", "-sS", "--max-time", "10", "http://web.corp.test/")
	if n := strings.Count(read(), "flow steered"); n == before {
		t.Error("after ztdiag -l debug, no debug line")
	}
	// nobody may read the status but not change the log.
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	exe := filepath.Join(dir, "ztdiag")
	b, err := os.ReadFile(l.bin("ztdiag"))
	if err != nil || os.WriteFile(exe, b, 0o755) != nil {
		t.Fatal(err)
	}
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "--socket", l.sock()}
	if out, code := l.run("client", append(nobody, "-n")...); code != 0 {
		t.Errorf("ztdiag -n as nobody: exit %d\n%s", code, out)
	}
	if out, code := l.run("client", append(nobody, "-l", "error")...); code != 4 {
		t.Errorf("ztdiag -l error as nobody: exit %d, want 4 (not permitted)\n%s", code, out)
	}
}

// readZip returns the files of a zip by name.
func readZip(t *testing.T, file string) map[string]string {
	t.Helper()
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name] = string(b)
	}
	return files
}
