package main

import (
	"archive/zip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

const bundleUsage = `usage: ztdiag -o FILE [--anonymize] [--json]
write the diagnostics bundle (zip), gathered by the agent (root): status,
effective settings with their sources, the config in force, routes and rules,
the resolver's state, the stub map, recent logs, versions and OS. Secrets are
never in it; --anonymize also hides user names, host names and private addresses.
flags:
`

// cmdBundle is nsdiag's -o.
func cmdBundle(ctx context.Context, e *env, file string, anonymize bool, args []string) error {
	if err := e.noArgs("-o", bundleUsage, args); err != nil {
		return err
	}
	b, err := e.c.Bundle(ctx, ctlapi.BundleRequest{Anonymize: anonymize})
	if err != nil {
		return err
	}
	n, err := writeBundle(file, b)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(map[string]any{"file": file, "files": len(b.Files), "bytes": n, "anonymized": anonymize})
	}
	fmt.Fprintf(e.out, "diagnostics bundle written: %s (%d files, %d bytes)\n", file, len(b.Files), n)
	return nil
}

// writeBundle writes b as a zip at file (0600: it describes the machine),
// through a temporary file renamed in place, so that a failed write leaves
// no half bundle; it returns the zip's size.
func writeBundle(file string, b ctlapi.Bundle) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".ztdiag-bundle-*")
	if err != nil {
		return 0, fmt.Errorf("bundle: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is there
	zw := zip.NewWriter(tmp)
	now := time.Now()
	b.Files = append(b.Files, ctlapi.BundleFile{Name: "ztdiag.txt",
		Data: fmt.Sprintf("ztdiag %s (%s/%s), bundle written %s\n", version, runtime.GOOS, runtime.GOARCH, now.UTC().Format(time.RFC3339))})
	for _, f := range b.Files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: now})
		if err == nil {
			_, err = w.Write([]byte(f.Data))
		}
		if err != nil {
			tmp.Close()
			return 0, fmt.Errorf("bundle: %s: %w", f.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("bundle: %w", err)
	}
	fi, err := tmp.Stat()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("bundle: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return 0, fmt.Errorf("bundle: %w", err)
	}
	return fi.Size(), nil
}
