package msi

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/enroll"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED LOUDLY: %s is not installed (Debian msitools; make deps installs it)", tool)
		}
	}
}

// table exports one table with msiinfo as rows of columns, keyed by the
// first column.
func table(t *testing.T, msiPath, name string) map[string][]string {
	t.Helper()
	out, err := exec.Command("msiinfo", "export", msiPath, name).CombinedOutput()
	if err != nil {
		t.Fatalf("msiinfo export %s: %v\n%s", name, err, out)
	}
	rows := map[string][]string{}
	lines := strings.Split(strings.TrimRight(string(out), "\r\n"), "\n")
	for _, l := range lines[3:] { // names, types, table and key
		cols := strings.Split(strings.TrimRight(l, "\r"), "\t")
		rows[cols[0]] = cols
	}
	return rows
}

func build(t *testing.T) (msiPath string, bins map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	bins = map[string][]byte{"ztagent.exe": []byte("MZ ztagent stand-in"), "ztdiag.exe": []byte("MZ ztdiag stand-in")}
	for name, b := range bins {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	wintun := filepath.Join(t.TempDir(), "wintun.dll")
	bins["wintun.dll"] = []byte("MZ wintun stand-in")
	if err := os.WriteFile(wintun, bins["wintun.dll"], 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := Build(Options{Version: "1.2.3", Arch: "amd64", BinDir: dir, OutDir: t.TempDir(), Wintun: wintun})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "ztagent-1.2.3-x64.msi" {
		t.Errorf("file name %s", filepath.Base(path))
	}
	return path, bins
}

// TestMSIWithoutWintun: an MSI built without wintun.dll says so in its name
// and holds no such file; a file that is not a DLL is refused.
func TestMSIWithoutWintun(t *testing.T) {
	need(t, "wixl", "msibuild", "msiinfo")
	dir := t.TempDir()
	for _, name := range []string{"ztagent.exe", "ztdiag.exe"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("MZ stand-in"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path, err := Build(Options{Version: "1.2.3", Arch: "amd64", BinDir: dir, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "ztagent-1.2.3-x64-nowintun.msi" {
		t.Errorf("file name %s, want it to say nowintun", filepath.Base(path))
	}
	if _, ok := table(t, path, "File")["wintun.dll"]; ok {
		t.Error("wintun.dll in the File table of an MSI built without it")
	}
	notDLL := filepath.Join(t.TempDir(), "wintun.dll")
	os.WriteFile(notDLL, []byte("<html>not found</html>"), 0o644)
	if _, err := Build(Options{Version: "1.2.3", Arch: "amd64", BinDir: dir, OutDir: t.TempDir(), Wintun: notDLL}); err == nil ||
		!strings.Contains(err.Error(), "not a Windows DLL") {
		t.Errorf("a wintun.dll that is not a DLL: err %v", err)
	}
}

// TestMSITables reads the built MSI back with msiinfo: the properties, the
// custom actions and their place in the sequence, the service control, the
// files.
func TestMSITables(t *testing.T) {
	need(t, "wixl", "msibuild", "msiinfo")
	path, _ := build(t)

	props := table(t, path, "Property")
	if got := props["ProductVersion"]; len(got) < 2 || got[1] != "1.2.3" {
		t.Errorf("ProductVersion %q", got)
	}
	if got := props["UpgradeCode"]; len(got) < 2 || !strings.EqualFold(got[1], "{"+UpgradeCode+"}") {
		t.Errorf("UpgradeCode %q", got)
	}
	secure := strings.Split(props["SecureCustomProperties"][1], ";")
	for _, k := range []string{"HOST", "TOKEN", "ENROLLAUTHTOKEN", "ENROLLENCRYPTIONTOKEN", "INSTALLMODE", "TENANT",
		"DOMAIN", "MODE", "PRELOGONUSER", "UPN", "CACERT", "USERKEY", "WIX_UPGRADE_DETECTED"} {
		if !contains(secure, k) {
			t.Errorf("SecureCustomProperties %q lacks %s", secure, k)
		}
	}
	hidden := strings.Split(props["MsiHiddenProperties"][1], ";")
	for _, k := range enroll.SecretParamKeys() {
		if !contains(hidden, strings.ToUpper(k)) {
			t.Errorf("MsiHiddenProperties %q lacks %s", hidden, strings.ToUpper(k))
		}
	}

	ca := table(t, path, "CustomAction")
	inst := ca["ZtInstall"]
	typ, _ := strconv.Atoi(inst[1])
	if typ&0x3F != TypeExeInstalledFile || typ&TypeInScript == 0 || typ&TypeNoImpersonate == 0 || typ&TypeHideTarget == 0 {
		t.Errorf("ZtInstall type %d: want an installed exe, deferred, not impersonated, target hidden", typ)
	}
	if inst[2] != "ztagent.exe" || !strings.HasPrefix(inst[3], "install --ignore-empty ") {
		t.Errorf("ZtInstall runs %q %q", inst[2], inst[3])
	}
	for _, k := range enroll.ValidParamKeys() {
		if want := `"` + k + "=[" + strings.ToUpper(k) + `]"`; !strings.Contains(inst[3], want) {
			t.Errorf("ZtInstall command lacks %s: %s", want, inst[3])
		}
	}
	if un := ca["ZtUninstall"]; un[3] != "uninstall" {
		t.Errorf("ZtUninstall %q", un)
	}

	seq := table(t, path, "InstallExecuteSequence")
	at := func(a string) int { n, _ := strconv.Atoi(seq[a][2]); return n }
	if !(at("InstallFiles") < at("ZtInstall") && at("ZtInstall") < at("InstallFinalize")) || seq["ZtInstall"][1] != `NOT REMOVE~="ALL"` {
		t.Errorf("ZtInstall at %d (%q): want after InstallFiles %d, before InstallFinalize %d",
			at("ZtInstall"), seq["ZtInstall"][1], at("InstallFiles"), at("InstallFinalize"))
	}
	if !(at("InstallInitialize") < at("ZtUninstall") && at("ZtUninstall") < at("StopServices")) || seq["ZtUninstall"][1] != `REMOVE~="ALL"` {
		t.Errorf("ZtUninstall at %d (%q): want after InstallInitialize, before StopServices", at("ZtUninstall"), seq["ZtUninstall"][1])
	}

	// ServiceControl: stop at install and uninstall (0x02|0x20), delete at
	// uninstall (0x80), for the service `ztagent install` registers.
	sc := table(t, path, "ServiceControl")["ztagent"]
	if ev, _ := strconv.Atoi(sc[2]); sc[1] != "ztagent" || ev != 0x02|0x20|0x80 || sc[5] != "ztagent.exe" {
		t.Errorf("ServiceControl %q", sc)
	}

	files := table(t, path, "File")
	for _, f := range []string{"ztagent.exe", "ztdiag.exe"} {
		if row, ok := files[f]; !ok || row[2] != f {
			t.Errorf("File table: %s is %q", f, row)
		}
	}
}

// TestMSIDumpAndFiles: msidump reads every table, and the files msiextract
// takes out of the embedded cabinet are the binaries given.
func TestMSIDumpAndFiles(t *testing.T) {
	need(t, "wixl", "msibuild", "msidump", "msiextract")
	path, bins := build(t)
	dump := t.TempDir()
	if out, err := exec.Command("msidump", "-t", "-d", dump, path).CombinedOutput(); err != nil {
		t.Fatalf("msidump: %v\n%s", err, out)
	}
	for _, tbl := range []string{"CustomAction", "Property", "ServiceControl", "File", "InstallExecuteSequence"} {
		if _, err := os.Stat(filepath.Join(dump, tbl+".idt")); err != nil {
			t.Errorf("msidump: %v", err)
		}
	}
	ext := t.TempDir()
	if out, err := exec.Command("msiextract", "-C", ext, path).CombinedOutput(); err != nil {
		t.Fatalf("msiextract: %v\n%s", err, out)
	}
	for name, want := range bins {
		matches, _ := filepath.Glob(filepath.Join(ext, "ztagent", name)) // INSTALLDIR under ProgramFiles64Folder
		if len(matches) != 1 {
			t.Errorf("%s not extracted into ztagent/", name)
			continue
		}
		if got, _ := os.ReadFile(matches[0]); !bytes.Equal(got, want) {
			t.Errorf("%s: extracted %q", name, got)
		}
	}
}

func TestProductVersion(t *testing.T) {
	for in, want := range map[string]string{"1.2.3": "1.2.3", "v0.4.0-rc1": "0.4.0", "2.0.1+g1234": "2.0.1"} {
		if got, err := productVersion(in); err != nil || got != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"1.2", "1.x.3", "dev"} {
		if _, err := productVersion(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
