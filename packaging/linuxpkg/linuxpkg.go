// Package linuxpkg builds ztagent's deb and rpm packages with nfpm, used as a
// library so that no packaging tool needs installing. Both formats carry the
// same files and the same maintainer scripts, written once for the two
// calling conventions (dpkg's words, rpm's instance counts): the service is
// registered by `ztagent install` (kardianos/service: systemd, else System V
// init), so that a package and a manual install register it the same way.
package linuxpkg

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Formats are the package formats Build makes.
var Formats = []string{"deb", "rpm"}

var (
	//go:embed postinst.sh
	postinst []byte
	//go:embed prerm.sh
	prerm []byte
	//go:embed postrm.sh
	postrm []byte
	//go:embed default.params
	defaultParams []byte
)

// Paths on the installed system.
const (
	BinDir       = "/usr/bin"
	DefaultsFile = "/etc/default/ztagent" // conffile: the Debian-style parameters
	ParamsFile   = "/etc/ztagent/install.params"
	StateDir     = "/var/lib/ztagent"
)

// Options say what to package.
type Options struct {
	Version string    // semantic version, e.g. 0.3.1
	Arch    string    // GOARCH: amd64, arm64
	BinDir  string    // holds the linux/Arch ztagent and ztdiag
	OutDir  string    // where the package is written
	MTime   time.Time // of every file, for reproducible packages; zero is now
}

// Build writes the package of format ("deb" or "rpm") into o.OutDir and
// returns its path.
func Build(format string, o Options) (string, error) {
	pkgr, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	if o.Version == "" || o.Arch == "" {
		return "", errors.New("linuxpkg: version and arch are required")
	}
	scripts, err := os.MkdirTemp("", "ztagent-pkg-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(scripts)
	info, err := packageInfo(o, scripts)
	if err != nil {
		return "", err
	}
	if err := nfpm.PrepareForPackager(nfpm.WithDefaults(info), format); err != nil {
		return "", fmt.Errorf("%s: %w", format, err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(o.OutDir, pkgr.ConventionalFileName(info))
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return "", fmt.Errorf("%s: %w", format, err)
	}
	return out, f.Close()
}

// packageInfo describes the package; the scripts and the defaults file are
// written to dir, where nfpm reads them.
func packageInfo(o Options, dir string) (*nfpm.Info, error) {
	write := map[string][]byte{"postinst": postinst, "prerm": prerm, "postrm": postrm, "default": defaultParams}
	for name, b := range write {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			return nil, err
		}
	}
	for _, b := range []string{"ztagent", "ztdiag"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("linuxpkg: %w", err)
		}
	}
	mtime := o.MTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	fi := func(mode os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: mtime}
	}
	scripts := nfpm.Scripts{
		PostInstall: filepath.Join(dir, "postinst"),
		PreRemove:   filepath.Join(dir, "prerm"),
		PostRemove:  filepath.Join(dir, "postrm"),
	}
	return &nfpm.Info{
		Name:        "ztagent",
		Arch:        o.Arch,
		Platform:    "linux",
		Version:     o.Version,
		Release:     "1",
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "ztagent developers <ztagent@users.noreply.github.com>",
		Vendor:      "ztagent",
		Homepage:    "https://github.com/ztagent/ztagent",
		Description: "Zero-trust network access agent\n ztagent enrolls the device with its organisation, steers the flows of\n private applications through an encrypted tunnel and leaves the rest direct.",
		MTime:       mtime,
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Source: filepath.Join(o.BinDir, "ztagent"), Destination: BinDir + "/ztagent", FileInfo: fi(0o755)},
				{Source: filepath.Join(o.BinDir, "ztdiag"), Destination: BinDir + "/ztdiag", FileInfo: fi(0o755)},
				{Source: filepath.Join(dir, "default"), Destination: DefaultsFile, Type: files.TypeConfigNoReplace, FileInfo: fi(0o600)},
				{Destination: "/etc/ztagent", Type: files.TypeDir, FileInfo: fi(0o755)},
				{Destination: StateDir, Type: files.TypeDir, FileInfo: fi(0o700)},
			},
			Scripts: scripts,
			RPM:     nfpm.RPM{Group: "System Environment/Daemons", Summary: "Zero-trust network access agent"},
		},
	}, nil
}
