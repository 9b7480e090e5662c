package linuxpkg

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBins writes stand-ins for the binaries: the packages' layout does not
// depend on what is inside them.
func fakeBins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []string{"ztagent", "ztdiag"} {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\necho "+b+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("SKIPPED LOUDLY: %s is not installed (make deps installs it)", tool)
	}
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func contains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

// TestDeb reads the deb back with dpkg-deb: control fields, conffile,
// maintainer scripts and the files with their modes.
func TestDeb(t *testing.T) {
	need(t, "dpkg-deb")
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			path, err := Build("deb", Options{Version: "1.2.3", Arch: arch, BinDir: fakeBins(t), OutDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(path) != "ztagent_1.2.3-1_"+arch+".deb" {
				t.Errorf("file name %s", filepath.Base(path))
			}
			contains(t, "control", output(t, "dpkg-deb", "-f", path),
				"Package: ztagent", "Version: 1.2.3-1", "Architecture: "+arch, "Section: net")
			contains(t, "contents", output(t, "dpkg-deb", "-c", path),
				"-rwxr-xr-x root/root", "./usr/bin/ztagent", "./usr/bin/ztdiag",
				"-rw------- root/root", "./etc/default/ztagent", "drwx------ root/root", "./var/lib/ztagent/")
			ctl := t.TempDir()
			output(t, "dpkg-deb", "-e", path, ctl)
			for name, want := range map[string]string{"postinst": "ztagent install", "prerm": "ztagent uninstall",
				"postrm": "rm -rf /var/lib/ztagent", "conffiles": "/etc/default/ztagent"} {
				b, err := os.ReadFile(filepath.Join(ctl, name))
				if err != nil {
					t.Fatal(err)
				}
				contains(t, name, string(b), want)
			}
		})
	}
}

// TestRPM reads the rpm back with rpm -qp.
func TestRPM(t *testing.T) {
	need(t, "rpm")
	for arch, rpmArch := range map[string]string{"amd64": "x86_64", "arm64": "aarch64"} {
		t.Run(arch, func(t *testing.T) {
			path, err := Build("rpm", Options{Version: "1.2.3", Arch: arch, BinDir: fakeBins(t), OutDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(path) != "ztagent-1.2.3-1."+rpmArch+".rpm" {
				t.Errorf("file name %s", filepath.Base(path))
			}
			contains(t, "info", output(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}\n", path),
				"ztagent 1.2.3-1 "+rpmArch)
			contains(t, "files", output(t, "rpm", "-qp", "--dump", path),
				"/usr/bin/ztagent", "/usr/bin/ztdiag", "/etc/default/ztagent", "/var/lib/ztagent")
			contains(t, "config", output(t, "rpm", "-qp", "--configfiles", path), "/etc/default/ztagent")
			contains(t, "scripts", output(t, "rpm", "-qp", "--scripts", path),
				"postinstall scriptlet", "ztagent install", "preuninstall scriptlet", "ztagent uninstall",
				"postuninstall scriptlet", "ZTAGENT_PURGE")
		})
	}
}
