// Command mkpkg builds ztagent's installation packages from binaries already
// built for the target: deb and rpm (linux), msi (windows, with wixl) and pkg
// (macOS flat package, written in Go). `make package` runs it once per
// target; it is a build tool and no part of the shipped binaries.
//
//	mkpkg -format deb,rpm -arch amd64 -version 0.3.1 -bin dist/build/linux-amd64 -out dist
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ztagent/ztagent/packaging/linuxpkg"
	"github.com/ztagent/ztagent/packaging/macpkg"
	"github.com/ztagent/ztagent/packaging/msi"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkpkg", flag.ContinueOnError)
	formats := fs.String("format", "", "comma-separated: deb, rpm, msi, pkg")
	arch := fs.String("arch", "amd64", "GOARCH of the binaries")
	version := fs.String("version", "", "package version (semantic, e.g. 0.3.1)")
	bin := fs.String("bin", "", "directory holding the binaries for the target")
	out := fs.String("out", "dist", "output directory")
	wintun := fs.String("wintun", "", "msi: path of wintun.dll (amd64, from wintun.net); without it the MSI is named …-nowintun.msi")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *formats == "" || *version == "" || *bin == "" {
		fs.Usage()
		return errors.New("-format, -version and -bin are required")
	}
	for _, f := range strings.Split(*formats, ",") {
		path, err := build(f, *arch, *version, *bin, *out, *wintun)
		if err != nil {
			return err
		}
		fmt.Println(path)
	}
	return nil
}

func build(format, arch, version, bin, out, wintun string) (string, error) {
	switch format {
	case "deb", "rpm":
		return linuxpkg.Build(format, linuxpkg.Options{Version: version, Arch: arch, BinDir: bin, OutDir: out})
	case "msi":
		return msi.Build(msi.Options{Version: version, Arch: arch, BinDir: bin, OutDir: out, Wintun: wintun})
	case "pkg":
		return macpkg.Build(macpkg.Options{Version: version, Arch: arch, BinDir: bin, OutDir: out})
	}
	return "", fmt.Errorf("unknown format %q (deb, rpm, msi, pkg)", format)
}
