package logging

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Rotator is a log file that rotates by size: when a write would take
// the file past its maximum size, it is renamed NAME.1 (NAME.1 becomes
// NAME.2, and so on, the oldest past Keep is removed) and a new file is
// started. Rotation happens in Write, under the lock, with no goroutine of
// its own. Files are created 0600 in a 0700 directory: logs describe the
// machine's traffic and are for administrators.
type Rotator struct {
	path string

	mu      sync.Mutex
	maxSize int64 // bytes
	keep    int   // rotated files kept, besides the current one
	f       *os.File
	size    int64
}

// MB is a megabyte, the unit of Rotator's maximum size.
const MB = 1 << 20

// OpenRotator opens (appending) or creates the log file path, rotated at
// maxMB megabytes with keep older files.
func OpenRotator(path string, maxMB, keep int) (*Rotator, error) {
	if maxMB < 1 || keep < 0 {
		return nil, fmt.Errorf("log file size %d MB, %d kept: want at least 1 MB and 0 or more files", maxMB, keep)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	r := &Rotator{path: path, maxSize: int64(maxMB) * MB, keep: keep}
	if err := r.openLocked(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rotator) openLocked() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first if p would take the file past its size.
func (r *Rotator) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		if err := r.rotateLocked(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// rotateLocked shifts NAME.i to NAME.i+1 (dropping what passes keep),
// NAME to NAME.1, and opens a new NAME.
func (r *Rotator) rotateLocked() error {
	r.f.Close()
	r.f = nil
	os.Remove(r.backup(r.keep))
	for i := r.keep - 1; i >= 1; i-- {
		os.Rename(r.backup(i), r.backup(i+1))
	}
	if r.keep > 0 {
		os.Rename(r.path, r.backup(1))
	} else {
		os.Remove(r.path)
	}
	return r.openLocked()
}

func (r *Rotator) backup(i int) string { return fmt.Sprintf("%s.%d", r.path, i) }

// Sync flushes the file to disk.
func (r *Rotator) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	return r.f.Sync()
}

// SetMaxSize changes the maximum size, at once: a file already past it
// rotates at the next write.
func (r *Rotator) SetMaxSize(mb int) error {
	if mb < 1 {
		return fmt.Errorf("log file size %d MB: want at least 1", mb)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxSize = int64(mb) * MB
	return nil
}

// Limits returns the maximum size in megabytes and the files kept.
func (r *Rotator) Limits() (maxMB, keep int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(r.maxSize / MB), r.keep
}

// Path is the current log file.
func (r *Rotator) Path() string { return r.path }

// Files are the log files there are, the current one first, then the
// rotated ones newest first.
func (r *Rotator) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	files := []string{r.path}
	for i := 1; i <= r.keep; i++ {
		if _, err := os.Stat(r.backup(i)); err == nil {
			files = append(files, r.backup(i))
		}
	}
	return files
}

// Close closes the file; writes after it fail.
func (r *Rotator) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}
