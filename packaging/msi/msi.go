// Package msi builds ztagent's Windows installer on Linux with wixl and
// msibuild (Debian's msitools). The MSI installs ztagent.exe, ztdiag.exe and
// wintun.dll (the TUN driver's library, which golang.zx2c4.com/wireguard/tun
// loads from the executable's directory) under Program Files and runs `ztagent install` in a deferred, elevated
// custom action with the silent parameters an administrator types for the
// seed's client (msiexec /i ztagent.msi host=… token=… /qn), so that the
// service is registered exactly as a manual install registers it.
//
// wixl covers most of the WiX source; two things it cannot express are set
// afterwards in the database with msibuild's SQL: the custom action's
// HideTarget bit (its command line holds tokens) and SecureCustomProperties,
// which wixl's MajorUpgrade fills with its own properties only.
package msi

import (
	"bytes"
	_ "embed"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/ztagent/ztagent/enroll"
)

//go:embed ztagent.wxs.tmpl
var wxsTemplate string

// Fixed identities: the upgrade code ties every version together (major
// upgrades); a component's GUID must stay the same while its path does.
const (
	UpgradeCode = "6f1d2b3c-4a5e-4f60-8a7b-9c0d1e2f3a4b"
	agentGUID   = "0d4b8f2e-7c1a-4e5b-9a36-2f8e1c7d5b40"
	diagGUID    = "0d4b8f2e-7c1a-4e5b-9a36-2f8e1c7d5b41"
	wintunGUID  = "0d4b8f2e-7c1a-4e5b-9a36-2f8e1c7d5b42"
)

// Custom action type bits (Windows Installer "Custom Action Return
// Processing Options" and "In-Script Execution Options").
const (
	TypeExeInstalledFile = 18     // run an installed file (FileKey) with ExeCommand
	TypeInScript         = 0x400  // deferred
	TypeNoImpersonate    = 0x800  // as LocalSystem
	TypeHideTarget       = 0x2000 // command line kept out of the log
)

// Sequence numbers of the two custom actions in InstallExecuteSequence.
const (
	UninstallSeq = 1850 // UnpublishFeatures 1800 < it < StopServices 1900
	InstallSeq   = 6500 // StartServices 5900 < it < InstallFinalize 6600
)

// Options say what to package.
type Options struct {
	Version string // semantic version; the MSI takes major.minor.patch
	Arch    string // amd64 only
	BinDir  string // holds ztagent.exe and ztdiag.exe
	OutDir  string
	// Wintun is the path of wintun.dll for amd64, from the signed release
	// at https://www.wintun.net (it is not built here and cannot be
	// downloaded by the build). Empty builds an MSI without it, named
	// …-nowintun.msi: its agent cannot start until wintun.dll is put next
	// to ztagent.exe.
	Wintun string
}

// Properties are the MSI's public properties for the install parameters:
// the names of `ztagent install`, upper case.
func Properties() []string {
	var ps []string
	for _, k := range enroll.ValidParamKeys() {
		ps = append(ps, strings.ToUpper(k))
	}
	return ps
}

// InstallCommand is the custom action's command line: every parameter as
// "key=[KEY]"; those not given expand to key= and --ignore-empty drops them,
// so that a repair or upgrade with no properties keeps the saved ones.
func InstallCommand() string {
	args := []string{"install", "--ignore-empty"}
	for _, k := range enroll.ValidParamKeys() {
		args = append(args, fmt.Sprintf(`"%s=[%s]"`, k, strings.ToUpper(k)))
	}
	return strings.Join(args, " ")
}

// Build writes ztagent-VERSION-x64.msi (…-nowintun.msi without o.Wintun)
// into o.OutDir and returns its path.
func Build(o Options) (string, error) {
	if o.Arch != "amd64" {
		return "", fmt.Errorf("msi: only windows/amd64 is packaged, not %s", o.Arch)
	}
	version, err := productVersion(o.Version)
	if err != nil {
		return "", err
	}
	for _, b := range []string{"ztagent.exe", "ztdiag.exe"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return "", fmt.Errorf("msi: %w", err)
		}
	}
	name := fmt.Sprintf("ztagent-%s-x64.msi", version)
	wintun := ""
	if o.Wintun == "" {
		name = fmt.Sprintf("ztagent-%s-x64-nowintun.msi", version)
	} else {
		if wintun, err = checkWintun(o.Wintun); err != nil {
			return "", err
		}
	}
	wxs, err := source(version, wintun)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "ztagent-msi-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "ztagent.wxs")
	if err := os.WriteFile(src, wxs, 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	out, err := filepath.Abs(filepath.Join(o.OutDir, name))
	if err != nil {
		return "", err
	}
	os.Remove(out) // wixl and msibuild would edit an old one
	// wixl finds the files relative to its working directory (it cannot
	// open an absolute Source): a staging directory links them together.
	stage := filepath.Join(tmp, "files")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"ztagent.exe": filepath.Join(o.BinDir, "ztagent.exe"),
		"ztdiag.exe":  filepath.Join(o.BinDir, "ztdiag.exe"),
	}
	if wintun != "" {
		files["wintun.dll"] = wintun
	}
	for name, from := range files {
		abs, err := filepath.Abs(from)
		if err != nil {
			return "", err
		}
		if err := os.Symlink(abs, filepath.Join(stage, name)); err != nil {
			return "", err
		}
	}
	if err := tool(stage, "wixl", "-a", "x64", "-o", out, src); err != nil {
		return "", err
	}
	if err := tool("", "msibuild", append([]string{out}, fixups()...)...); err != nil {
		os.Remove(out)
		return "", err
	}
	return out, nil
}

// checkWintun returns the absolute path of the wintun.dll at path after
// checking that it is a Windows DLL (an "MZ" executable), so that a wrong
// file is not shipped under its name.
func checkWintun(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return "", fmt.Errorf("msi: wintun.dll: %w", err)
	}
	if !bytes.HasPrefix(b, []byte("MZ")) {
		return "", fmt.Errorf("msi: %s is not a Windows DLL (take bin/amd64/wintun.dll from the wintun.net release)", path)
	}
	return abs, nil
}

// source renders the WiX source; wintun is the absolute path of wintun.dll,
// or "" to leave it out.
func source(version, wintun string) ([]byte, error) {
	var hidden []string
	for _, k := range enroll.SecretParamKeys() {
		hidden = append(hidden, strings.ToUpper(k))
	}
	esc := func(s string) string {
		var b bytes.Buffer
		xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	data := map[string]any{
		"Version": version, "UpgradeCode": UpgradeCode, "AgentGUID": agentGUID, "DiagGUID": diagGUID,
		"Hidden": strings.Join(hidden, ";"), "InstallCommand": esc(InstallCommand()),
		"InstallSeq": InstallSeq, "UninstallSeq": UninstallSeq,
		"Wintun": wintun != "", "WintunGUID": wintunGUID,
	}
	t, err := template.New("wxs").Parse(wxsTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// fixups are msibuild's SQL for what wixl cannot write.
func fixups() []string {
	typ := TypeExeInstalledFile | TypeInScript | TypeNoImpersonate | TypeHideTarget
	secure := append([]string{"WIX_DOWNGRADE_DETECTED", "WIX_UPGRADE_DETECTED"}, Properties()...)
	return []string{
		"-q", fmt.Sprintf("UPDATE `CustomAction` SET `Type` = %d WHERE `Action` = 'ZtInstall'", typ),
		"-q", fmt.Sprintf("UPDATE `Property` SET `Value` = '%s' WHERE `Property` = 'SecureCustomProperties'",
			strings.Join(secure, ";")),
	}
}

// productVersion is major.minor.patch of a semantic version (the MSI's
// ProductVersion is numeric).
func productVersion(v string) (string, error) {
	v = strings.TrimPrefix(v, "v")
	core, _, _ := strings.Cut(v, "-")
	core, _, _ = strings.Cut(core, "+")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("msi: version %q is not major.minor.patch", v)
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return "", fmt.Errorf("msi: version %q is not major.minor.patch", v)
		}
	}
	return core, nil
}

func tool(dir, name string, args ...string) error {
	if _, err := exec.LookPath(name); err != nil {
		return fmt.Errorf("msi: %s is not installed (Debian package msitools; make deps): %w", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("msi: %s: %w\n%s", name, err, out)
	}
	if len(bytes.TrimSpace(out)) > 0 && name == "msibuild" {
		return errors.New("msi: msibuild: " + string(out))
	}
	return nil
}
