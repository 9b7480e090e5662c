// Package macpkg builds ztagent's macOS installer, a flat product archive,
// on any OS in pure Go: there is no pkgbuild, productbuild, xar or mkbom off
// macOS, so the few formats involved are written here from their
// descriptions (cpio.go, bom.go, xar.go).
//
// The archive (a xar) holds Distribution, the product's installer script,
// and one component package, ztagent.pkg/, with PackageInfo, Bom, Payload (a
// gzip-compressed odc cpio of the files, installed relative to /) and
// Scripts (a gzip-compressed cpio with the postinstall, which registers the
// service through `ztagent install` with the silent parameters).
package macpkg

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

//go:embed scripts/postinstall
var postinstall []byte

// Identifier is the component package's identifier (pkgutil --pkgs).
const Identifier = "com.ztagent.agent"

// InstallDir is where the binaries go.
const InstallDir = "/usr/local/bin"

// Options say what to package.
type Options struct {
	Version string    // e.g. 0.3.1
	Arch    string    // GOARCH: amd64 or arm64
	BinDir  string    // holds the darwin/Arch ztagent and ztdiag
	OutDir  string    // where the .pkg is written
	MTime   time.Time // of every file; zero is now
}

// hostArch is the Distribution's name for a GOARCH.
var hostArch = map[string]string{"amd64": "x86_64", "arm64": "arm64"}

// Build writes ztagent-VERSION-darwin-ARCH.pkg into o.OutDir and returns
// its path.
func Build(o Options) (string, error) {
	arch, ok := hostArch[o.Arch]
	if !ok || o.Version == "" {
		return "", fmt.Errorf("macpkg: need a version and arch amd64 or arm64 (got %q, %q)", o.Version, o.Arch)
	}
	mtime := o.MTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	files, err := payloadEntries(o.BinDir, mtime.Unix())
	if err != nil {
		return "", err
	}
	archive, err := productArchive(files, o.Version, arch, mtime)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(o.OutDir, fmt.Sprintf("ztagent-%s-darwin-%s.pkg", o.Version, o.Arch))
	return out, os.WriteFile(out, archive, 0o644)
}

// payloadEntries are the installed files, relative to /, each directory
// before its contents.
func payloadEntries(binDir string, mtime int64) ([]entry, error) {
	es := []entry{}
	for _, d := range []string{".", "./usr", "./usr/local", "./usr/local/bin"} {
		es = append(es, entry{name: d, mode: modeDir | 0o755, mtime: mtime})
	}
	for _, b := range []string{"ztagent", "ztdiag"} {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			return nil, fmt.Errorf("macpkg: %w", err)
		}
		es = append(es, entry{name: "." + InstallDir + "/" + b, mode: modeFile | 0o755, mtime: mtime, data: data})
	}
	return es, nil
}

// productArchive assembles the xar of a product archive.
func productArchive(files []entry, version, arch string, mtime time.Time) ([]byte, error) {
	payload, err := gzipCPIO(files)
	if err != nil {
		return nil, err
	}
	scripts, err := gzipCPIO([]entry{
		{name: ".", mode: modeDir | 0o755, mtime: mtime.Unix()},
		{name: "./postinstall", mode: modeFile | 0o755, mtime: mtime.Unix(), data: postinstall},
	})
	if err != nil {
		return nil, err
	}
	var bom bytes.Buffer
	if err := writeBOM(&bom, files); err != nil {
		return nil, err
	}
	var kbytes int64
	for _, f := range files {
		kbytes += (int64(len(f.data)) + 1023) / 1024
	}
	info, err := packageInfo(version, len(files), kbytes)
	if err != nil {
		return nil, err
	}
	dist, err := distribution(version, arch, kbytes)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	err = writeXAR(&out, []*xarNode{
		{name: "Distribution", data: dist},
		{name: "ztagent.pkg", dir: true, children: []*xarNode{
			{name: "PackageInfo", data: info},
			{name: "Bom", data: bom.Bytes()},
			{name: "Payload", data: payload},
			{name: "Scripts", data: scripts},
		}},
	}, mtime)
	return out.Bytes(), err
}

func gzipCPIO(es []entry) ([]byte, error) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if err := writeCPIO(zw, es); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// PackageInfo describes the component package to Installer.
type pkgInfo struct {
	XMLName           xml.Name `xml:"pkg-info"`
	FormatVersion     int      `xml:"format-version,attr"`
	Identifier        string   `xml:"identifier,attr"`
	Version           string   `xml:"version,attr"`
	InstallLocation   string   `xml:"install-location,attr"`
	Auth              string   `xml:"auth,attr"`
	PostinstallAction string   `xml:"postinstall-action,attr"`
	Payload           struct {
		NumberOfFiles int   `xml:"numberOfFiles,attr"`
		InstallKBytes int64 `xml:"installKBytes,attr"`
	} `xml:"payload"`
	Scripts struct {
		Postinstall struct {
			File string `xml:"file,attr"`
		} `xml:"postinstall"`
	} `xml:"scripts"`
}

func packageInfo(version string, files int, kbytes int64) ([]byte, error) {
	p := pkgInfo{FormatVersion: 2, Identifier: Identifier, Version: version, InstallLocation: "/",
		Auth: "root", PostinstallAction: "none"}
	p.Payload.NumberOfFiles, p.Payload.InstallKBytes = files, kbytes
	p.Scripts.Postinstall.File = "./postinstall"
	return marshal(p)
}

// The Distribution: one hidden choice installing the component, on the boot
// volume only, on the architecture the binaries are for.
type distDoc struct {
	XMLName xml.Name `xml:"installer-gui-script"`
	MinSpec string   `xml:"minSpecVersion,attr"`
	Title   string   `xml:"title"`
	Options distOpts `xml:"options"`
	Domains distDoms `xml:"domains"`
	Outline distLine `xml:"choices-outline>line"`
	Choices []distChoice
	PkgRefs []distPkgRef
	MinOS   struct {
		Min string `xml:"min,attr"`
	} `xml:"volume-check>allowed-os-versions>os-version"`
}

type (
	distOpts struct {
		Customize         string `xml:"customize,attr"`
		RequireScripts    bool   `xml:"require-scripts,attr"`
		HostArchitectures string `xml:"hostArchitectures,attr"`
	}
	distDoms struct {
		LocalSystem bool `xml:"enable_localSystem,attr"`
		Anywhere    bool `xml:"enable_anywhere,attr"`
		UserHome    bool `xml:"enable_currentUserHome,attr"`
	}
	distLine struct {
		Choice string     `xml:"choice,attr"`
		Lines  []distLine `xml:"line"`
	}
	distChoice struct {
		XMLName xml.Name `xml:"choice"`
		ID      string   `xml:"id,attr"`
		Visible *bool    `xml:"visible,attr,omitempty"`
		PkgRef  *struct {
			ID string `xml:"id,attr"`
		} `xml:"pkg-ref,omitempty"`
	}
	distPkgRef struct {
		XMLName       xml.Name `xml:"pkg-ref"`
		ID            string   `xml:"id,attr"`
		Version       string   `xml:"version,attr"`
		OnConclusion  string   `xml:"onConclusion,attr"`
		InstallKBytes int64    `xml:"installKBytes,attr"`
		Path          string   `xml:",chardata"`
	}
)

func distribution(version, arch string, kbytes int64) ([]byte, error) {
	hidden := false
	d := distDoc{MinSpec: "2", Title: "ztagent " + version,
		Options: distOpts{Customize: "never", HostArchitectures: arch},
		Domains: distDoms{LocalSystem: true},
		Outline: distLine{Choice: "default", Lines: []distLine{{Choice: Identifier}}},
	}
	d.MinOS.Min = "10.15"
	c := distChoice{ID: Identifier, Visible: &hidden}
	c.PkgRef = &struct {
		ID string `xml:"id,attr"`
	}{Identifier}
	d.Choices = []distChoice{{ID: "default"}, c}
	d.PkgRefs = []distPkgRef{{ID: Identifier, Version: version, OnConclusion: "none", InstallKBytes: kbytes, Path: "#ztagent.pkg"}}
	return marshal(d)
}

func marshal(v any) ([]byte, error) {
	b, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, errors.Join(errors.New("macpkg"), err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}
