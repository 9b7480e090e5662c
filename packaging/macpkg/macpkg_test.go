package macpkg

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED LOUDLY: %s is not installed (make deps installs it)", tool)
		}
	}
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestPkgReadBack builds a pkg and reads every part back with tools that
// share no code with this package: bsdtar (libarchive) for the xar, gzip and
// GNU cpio for the Payload and Scripts, 7-Zip to verify the xar's
// checksums, file(1) and cksum(1) for the BOM.
func TestPkgReadBack(t *testing.T) {
	need(t, "bsdtar", "cpio", "gzip")
	bins := map[string][]byte{"ztagent": bytes.Repeat([]byte("agent-binary "), 5000), "ztdiag": []byte("diag binary\n")}
	dir := t.TempDir()
	for n, b := range bins {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	pkg, err := Build(Options{Version: "1.2.3", Arch: "arm64", BinDir: dir, OutDir: t.TempDir(), MTime: mtime})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(pkg) != "ztagent-1.2.3-darwin-arm64.pkg" {
		t.Errorf("file name %s", filepath.Base(pkg))
	}

	list := strings.Fields(string(run(t, nil, "bsdtar", "-tf", pkg)))
	want := []string{"Distribution", "ztagent.pkg", "ztagent.pkg/PackageInfo", "ztagent.pkg/Bom", "ztagent.pkg/Payload", "ztagent.pkg/Scripts"}
	if !slices.Equal(list, want) {
		t.Fatalf("bsdtar -tf: %q, want %q", list, want)
	}
	part := func(name string) []byte { return run(t, nil, "bsdtar", "-xOf", pkg, name) }

	t.Run("xar checksums", func(t *testing.T) {
		for _, sz := range []string{"7zz", "7z"} {
			if _, err := exec.LookPath(sz); err == nil {
				out := run(t, nil, sz, "t", pkg)
				if !bytes.Contains(out, []byte("Everything is Ok")) {
					t.Errorf("%s t:\n%s", sz, out)
				}
				return
			}
		}
		t.Skip("SKIPPED LOUDLY: no 7-Zip (Debian 7zip) to verify the xar's checksums")
	})

	t.Run("Distribution", func(t *testing.T) {
		var d struct {
			Options struct {
				Arch string `xml:"hostArchitectures,attr"`
			} `xml:"options"`
			PkgRef []struct {
				ID      string `xml:"id,attr"`
				Version string `xml:"version,attr"`
				Path    string `xml:",chardata"`
			} `xml:"pkg-ref"`
		}
		if err := xml.Unmarshal(part("Distribution"), &d); err != nil {
			t.Fatal(err)
		}
		if d.Options.Arch != "arm64" || len(d.PkgRef) != 1 || d.PkgRef[0].Path != "#ztagent.pkg" ||
			d.PkgRef[0].ID != Identifier || d.PkgRef[0].Version != "1.2.3" {
			t.Errorf("Distribution: %+v", d)
		}
	})

	t.Run("PackageInfo", func(t *testing.T) {
		var p pkgInfo
		if err := xml.Unmarshal(part("ztagent.pkg/PackageInfo"), &p); err != nil {
			t.Fatal(err)
		}
		if p.Identifier != Identifier || p.Version != "1.2.3" || p.InstallLocation != "/" || p.Auth != "root" ||
			p.Payload.NumberOfFiles != 6 || p.Scripts.Postinstall.File != "./postinstall" {
			t.Errorf("PackageInfo: %+v", p)
		}
	})

	payload := run(t, part("ztagent.pkg/Payload"), "gzip", "-dc")
	t.Run("Payload", func(t *testing.T) {
		got := strings.Fields(string(run(t, payload, "cpio", "-it", "--quiet")))
		want := []string{".", "./usr", "./usr/local", "./usr/local/bin", "./usr/local/bin/ztagent", "./usr/local/bin/ztdiag"}
		if !slices.Equal(got, want) {
			t.Errorf("cpio -it: %q, want %q", got, want)
		}
		verbose := string(run(t, payload, "cpio", "-itv", "--quiet"))
		if !strings.Contains(verbose, "-rwxr-xr-x") || !strings.Contains(verbose, "drwxr-xr-x") {
			t.Errorf("modes:\n%s", verbose)
		}
		for n, b := range bins {
			if got := run(t, payload, "cpio", "-i", "--quiet", "--to-stdout", "./usr/local/bin/"+n); !bytes.Equal(got, b) {
				t.Errorf("%s: %d bytes in the Payload, want %d", n, len(got), len(b))
			}
		}
	})

	t.Run("Scripts", func(t *testing.T) {
		scripts := run(t, part("ztagent.pkg/Scripts"), "gzip", "-dc")
		if got := strings.Fields(string(run(t, scripts, "cpio", "-it", "--quiet"))); !slices.Equal(got, []string{".", "./postinstall"}) {
			t.Errorf("Scripts: %q", got)
		}
		script := run(t, scripts, "cpio", "-i", "--quiet", "--to-stdout", "./postinstall")
		if !bytes.Equal(script, postinstall) {
			t.Error("postinstall differs from scripts/postinstall")
		}
		run(t, script, "sh", "-n") // parses
		if !bytes.Contains(script, []byte(`"$BIN" install "$@"`)) {
			t.Error("postinstall does not run ztagent install")
		}
	})

	t.Run("Bom", func(t *testing.T) {
		bom := part("ztagent.pkg/Bom")
		if _, err := exec.LookPath("file"); err == nil {
			f := filepath.Join(t.TempDir(), "Bom")
			os.WriteFile(f, bom, 0o644)
			if out := run(t, nil, "file", "-b", f); !bytes.Contains(out, []byte("bill of materials")) {
				t.Errorf("file(1): %s", out)
			}
		}
		paths, err := readBOM(bom)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			". 40755 0/0 0 0",
			"./usr 40755 0/0 0 0",
			"./usr/local 40755 0/0 0 0",
			"./usr/local/bin 40755 0/0 0 0",
			fmt.Sprintf("./usr/local/bin/ztagent 100755 0/0 %d %s", len(bins["ztagent"]), posixCksum(t, bins["ztagent"])),
			fmt.Sprintf("./usr/local/bin/ztdiag 100755 0/0 %d %s", len(bins["ztdiag"]), posixCksum(t, bins["ztdiag"])),
		}
		if !slices.Equal(paths, want) {
			t.Errorf("BOM paths:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
		}
	})
}

// posixCksum is cksum(1)'s CRC of b.
func posixCksum(t *testing.T, b []byte) string {
	t.Helper()
	need(t, "cksum")
	return strings.Fields(string(run(t, b, "cksum")))[0]
}

func TestCksum(t *testing.T) {
	need(t, "cksum")
	for _, in := range []string{"", "a", "123456789", strings.Repeat("ztagent", 1000)} {
		if got, want := strconv.FormatUint(uint64(cksum([]byte(in))), 10), posixCksum(t, []byte(in)); got != want {
			t.Errorf("cksum(%.10q) = %s, cksum(1) says %s", in, got, want)
		}
	}
}

// readBOM lists the Paths tree of a BOM as lsbom's default columns do:
// path, octal mode, uid/gid, size, cksum. It follows the store's block table
// and variables rather than assuming writeBOM's layout.
func readBOM(b []byte) ([]string, error) {
	u32 := func(off uint32) uint32 {
		if int(off)+4 > len(b) {
			return 0
		}
		return binary.BigEndian.Uint32(b[off:])
	}
	if len(b) < bomHeaderSize || string(b[:8]) != "BOMStore" || u32(8) != 1 {
		return nil, fmt.Errorf("not a BOMStore")
	}
	indexOff, varsOff := u32(16), u32(24)
	nblocks := u32(indexOff)
	block := func(i uint32) ([]byte, error) {
		if i == 0 || i >= nblocks {
			return nil, fmt.Errorf("block %d out of range", i)
		}
		addr, n := u32(indexOff+4+8*i), u32(indexOff+8+8*i)
		if int(addr)+int(n) > len(b) {
			return nil, fmt.Errorf("block %d beyond the file", i)
		}
		return b[addr : addr+n], nil
	}
	vars := map[string]uint32{}
	off := varsOff + 4
	for range u32(varsOff) {
		idx, n := u32(off), uint32(b[off+4])
		vars[string(b[off+5:off+5+n])] = idx
		off += 5 + n
	}
	for _, v := range []string{"BomInfo", "Paths", "HLIndex", "VIndex", "Size64"} {
		if _, ok := vars[v]; !ok {
			return nil, fmt.Errorf("variable %s missing", v)
		}
	}
	tree, err := block(vars["Paths"])
	if err != nil || string(tree[:4]) != "tree" {
		return nil, fmt.Errorf("Paths is not a tree: %v", err)
	}
	node, err := block(binary.BigEndian.Uint32(tree[8:]))
	if err != nil {
		return nil, err
	}
	if binary.BigEndian.Uint16(node) != 1 {
		return nil, fmt.Errorf("Paths root is not a leaf")
	}
	names := map[uint32]string{}
	var out []string
	for i := range uint32(binary.BigEndian.Uint16(node[2:])) {
		e := node[12+8*i:]
		info1, err := block(binary.BigEndian.Uint32(e))
		if err != nil {
			return nil, err
		}
		key, err := block(binary.BigEndian.Uint32(e[4:]))
		if err != nil {
			return nil, err
		}
		id, parent := binary.BigEndian.Uint32(info1), binary.BigEndian.Uint32(key)
		name := string(bytes.TrimRight(key[4:], "\x00"))
		if parent != 0 {
			name = names[parent] + "/" + name
		}
		names[id] = name
		info2, err := block(binary.BigEndian.Uint32(info1[4:]))
		if err != nil {
			return nil, err
		}
		mode := binary.BigEndian.Uint16(info2[4:])
		uid, gid := binary.BigEndian.Uint32(info2[6:]), binary.BigEndian.Uint32(info2[10:])
		size, sum := binary.BigEndian.Uint32(info2[18:]), binary.BigEndian.Uint32(info2[23:])
		out = append(out, fmt.Sprintf("%s %o %d/%d %d %d", name, mode, uid, gid, size, sum))
	}
	return out, nil
}
