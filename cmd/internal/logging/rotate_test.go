package logging

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestRotatorKeepsNFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "ztagent.log")
	r, err := OpenRotator(path, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	line := append(bytes.Repeat([]byte("x"), 1023), '\n') // 1 KiB
	for range 4*1024 + 10 {                               // a little over 4 MB
		if _, err := r.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	files := r.Files()
	if want := []string{path, path + ".1", path + ".2"}; len(files) != 3 || files[1] != want[1] || files[2] != want[2] {
		t.Fatalf("files %q, want %q", files, want)
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("a fourth file is kept")
	}
	for _, f := range files[1:] {
		fi, err := os.Stat(f)
		if err != nil || fi.Size() != MB {
			t.Fatalf("%s: %v, size %d, want %d", f, err, fi.Size(), MB)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestRotatorSetMaxSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ztagent.log")
	r, err := OpenRotator(path, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	chunk := bytes.Repeat([]byte("y"), 1536*1024) // 1.5 MB: fits in 2 MB
	r.Write(chunk)
	if len(r.Files()) != 1 {
		t.Fatal("rotated below the maximum size")
	}
	if err := r.SetMaxSize(0); err == nil {
		t.Fatal("0 MB accepted")
	}
	if err := r.SetMaxSize(1); err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("z\n"))
	if files := r.Files(); len(files) != 2 {
		t.Fatalf("after -m 1 the file did not rotate: %q", files)
	}
	if mb, keep := r.Limits(); mb != 1 || keep != 1 {
		t.Fatalf("limits %d MB, %d kept", mb, keep)
	}
}

// A reopened log appends to the file, and its size counts toward rotation.
func TestRotatorAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ztagent.log")
	os.WriteFile(path, []byte("before\n"), 0o600)
	r, err := OpenRotator(path, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("after\n"))
	r.Close()
	if b, _ := os.ReadFile(path); string(b) != "before\nafter\n" {
		t.Fatalf("file %q", b)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

// The level changes at once for loggers already derived, and lines go to
// the file.
func TestLogsLevelAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ztagent.log")
	logs, err := Open(Options{Level: zapcore.InfoLevel, File: path, MaxMB: 1, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	dns := logs.Logger.Named("dns")
	dns.Debug("before")
	logs.SetLevel(zapcore.DebugLevel)
	dns.Debug("after")
	if logs.Level() != zapcore.DebugLevel || logs.File() != path {
		t.Fatalf("level %v, file %q", logs.Level(), logs.File())
	}
	logs.Close()
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte("before")) || !bytes.Contains(b, []byte("\tdebug\tdns\t")) || !bytes.Contains(b, []byte("after")) {
		t.Fatalf("log file:\n%s", b)
	}
}

// A log file that cannot be opened leaves a logger to standard error, and
// the error.
func TestLogsWithoutFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	logs, err := Open(Options{Level: zapcore.InfoLevel, File: filepath.Join(dir, "file", "ztagent.log"), MaxMB: 1, Keep: 1})
	if err == nil || logs == nil || logs.Logger == nil || logs.File() != "" {
		t.Fatalf("Open: %v, %+v", err, logs)
	}
	if err := logs.SetMaxSize(5); !errors.Is(err, ErrNoFile) {
		t.Fatalf("SetMaxSize without a file: %v", err)
	}
}
