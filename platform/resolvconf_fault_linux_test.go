package platform

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"syscall"
)

// errKilled is what a faultFS panics with when it stops the agent dead.
var errKilled = errors.New("killed by faultFS")

// faultFS is the real file system with faults injected for the resolv.conf
// configurator. Every operation that changes the disk is a step; at step
// killAt the agent is stopped dead, as by SIGKILL: a write is cut short (cut
// chooses how many of its bytes got through, at random when nil), nothing
// after it reaches the disk, and faultFS panics with errKilled, for killed to
// recover. fail, when set, is asked before every operation (reads included)
// and may fail it. busy is a path that rename cannot replace (EBUSY), as when
// a file is bind-mounted over it.
type faultFS struct {
	osFS
	busy   string
	killAt int
	cut    func(n int) int
	fail   func(op, name string) error
	rnd    *rand.Rand

	steps  int
	lastOp string // the operation of the last step
	dead   bool
}

// killed runs fn and reports whether a faultFS stopped it dead.
func killed(fn func()) (dead bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != errKilled { //nolint:errorlint // the very value panicked with
				panic(v)
			}
			dead = true
		}
	}()
	fn()
	return false
}

// step counts a change to the disk and kills the agent at killAt.
func (f *faultFS) step(op, name string) error {
	if f.dead {
		panic(errKilled)
	}
	f.steps++
	f.lastOp = op
	if f.steps == f.killAt {
		f.dead = true
		panic(errKilled)
	}
	return f.check(op, name)
}

// check asks fail about an operation; after the kill nothing runs.
func (f *faultFS) check(op, name string) error {
	if f.dead {
		panic(errKilled)
	}
	if f.fail != nil {
		return f.fail(op, name)
	}
	return nil
}

func (f *faultFS) Lstat(name string) (fs.FileInfo, error) {
	if err := f.check("lstat", name); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: name, Err: err}
	}
	return f.osFS.Lstat(name)
}

func (f *faultFS) ReadFile(name string) ([]byte, error) {
	if err := f.check("read", name); err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return f.osFS.ReadFile(name)
}

func (f *faultFS) Readlink(name string) (string, error) {
	if err := f.check("readlink", name); err != nil {
		return "", &os.PathError{Op: "readlink", Path: name, Err: err}
	}
	return f.osFS.Readlink(name)
}

func (f *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (resolvFile, error) {
	if err := f.step("open", name); err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	file, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{fs: f, f: file}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	err := f.step("rename", newpath)
	if err == nil && newpath == f.busy {
		err = syscall.EBUSY
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return f.osFS.Rename(oldpath, newpath)
}

func (f *faultFS) Remove(name string) error {
	if err := f.step("remove", name); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return f.osFS.Remove(name)
}

func (f *faultFS) Symlink(oldname, newname string) error {
	if err := f.step("symlink", newname); err != nil {
		return &os.LinkError{Op: "symlink", Old: oldname, New: newname, Err: err}
	}
	return f.osFS.Symlink(oldname, newname)
}

// faultFile is a file open for writing through a faultFS.
type faultFile struct {
	fs *faultFS
	f  *os.File
}

func (w *faultFile) Fd() uintptr { return w.f.Fd() }

func (w *faultFile) Chmod(mode fs.FileMode) error {
	if err := w.fs.step("chmod", w.f.Name()); err != nil {
		return err
	}
	return w.f.Chmod(mode)
}

func (w *faultFile) Chown(uid, gid int) error {
	if err := w.fs.step("chown", w.f.Name()); err != nil {
		return err
	}
	return w.f.Chown(uid, gid)
}

func (w *faultFile) Truncate(size int64) error {
	if err := w.fs.step("truncate", w.f.Name()); err != nil {
		return err
	}
	return w.f.Truncate(size)
}

func (w *faultFile) Sync() error {
	if err := w.fs.step("sync", w.f.Name()); err != nil {
		return err
	}
	return w.f.Sync()
}

func (w *faultFile) Close() error {
	if err := w.fs.step("close", w.f.Name()); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}

// WriteAt writes b, or, when the agent is killed or the write fails here,
// the first bytes of b only: write(2) is not atomic against SIGKILL or a
// full disk.
func (w *faultFile) WriteAt(b []byte, off int64) (int, error) {
	if w.fs.dead {
		panic(errKilled)
	}
	w.fs.steps++
	w.fs.lastOp = "write"
	kill := w.fs.steps == w.fs.killAt
	var err error
	if !kill {
		err = w.fs.check("write", w.f.Name())
	}
	if !kill && err == nil {
		return w.f.WriteAt(b, off)
	}
	n, _ := w.f.WriteAt(b[:w.fs.cutAt(len(b))], off)
	if kill {
		w.fs.dead = true
		panic(errKilled)
	}
	return n, err
}

// cutAt is how many of n bytes a write cut short wrote.
func (f *faultFS) cutAt(n int) int {
	if f.cut != nil {
		return max(0, min(f.cut(n), n))
	}
	if f.rnd == nil {
		return n / 2
	}
	return f.rnd.IntN(n + 1)
}
