package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// resolvFS is the file system as the resolv.conf configurator uses it: the
// real one (osFS), or in tests one that fails chosen operations or stops the
// agent dead at a chosen step, as a SIGKILL would.
type resolvFS interface {
	Lstat(name string) (fs.FileInfo, error)
	ReadFile(name string) ([]byte, error)
	Readlink(name string) (string, error)
	OpenFile(name string, flag int, perm fs.FileMode) (resolvFile, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	Symlink(oldname, newname string) error
}

// resolvFile is a file open for writing; *os.File is one.
type resolvFile interface {
	Fd() uintptr
	Chmod(mode fs.FileMode) error
	Chown(uid, gid int) error
	WriteAt(b []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// osFS is the real file system.
type osFS struct{}

func (osFS) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(name) }
func (osFS) ReadFile(name string) ([]byte, error)   { return os.ReadFile(name) }
func (osFS) Readlink(name string) (string, error)   { return os.Readlink(name) }
func (osFS) Rename(oldpath, newpath string) error   { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error               { return os.Remove(name) }
func (osFS) Symlink(oldname, newname string) error  { return os.Symlink(oldname, newname) }

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (resolvFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a nil *os.File in a non-nil interface
	}
	return f, nil
}

// isMountPoint reports whether path is a mount point in this thread's mount
// namespace, as a file bind-mounted over /etc/resolv.conf by ip netns exec,
// Docker or Kubernetes is. When mountinfo cannot be read it reports false,
// and the EBUSY fallback of writeFile still applies.
func isMountPoint(path string) bool {
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		if b, err = os.ReadFile("/proc/self/mountinfo"); err != nil {
			return false
		}
	}
	return mountinfoHas(b, filepath.Clean(path))
}

// mountinfoHas reports whether mountinfo (proc(5) format) lists path as a
// mount point (field 5, with space, tab, newline and backslash octal-escaped).
func mountinfoHas(mountinfo []byte, path string) bool {
	for line := range strings.Lines(string(mountinfo)) {
		fields := strings.Fields(line)
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }

// tempName is the fixed scratch file beside path; a fixed name lets the next
// start remove one left by a crash.
func tempName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".ztagent-tmp")
}

func removeStaleTemps(fsys resolvFS, path string) {
	fsys.Remove(tempName(path))
}

// writeFile replaces path with a regular file holding data: a synced temp file
// renamed over it, or, when path is a mount point, in place. rec is the
// journal entry in force; an in-place write is added to it, journal first.
func (r *resolvConfDNS) writeFile(data []byte, attrs fileAttrs, rec *resolvConfJournal) error {
	if isMountPoint(r.path) {
		// Known ahead: no temp file in a directory that may be the host's
		// /etc, shared with agents in other namespaces.
		if err := r.writeInPlace(data, attrs, rec); err != nil {
			return fmt.Errorf("writing %s in place (it is a mount point): %w", r.path, err)
		}
		return nil
	}
	tmp := tempName(r.path)
	r.fsys.Remove(tmp)
	if err := r.writeSynced(tmp, data, attrs); err != nil {
		r.fsys.Remove(tmp)
		return fmt.Errorf("writing %s: %w", r.path, err)
	}
	err := r.fsys.Rename(tmp, r.path)
	if err == nil {
		syncDir(filepath.Dir(r.path))
		return nil
	}
	r.fsys.Remove(tmp)
	// ip netns exec, Docker and Kubernetes bind-mount a file over
	// /etc/resolv.conf; rename(2) cannot replace a mount point (EBUSY, or
	// EXDEV on some kernels), so the file is rewritten in place.
	if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EXDEV) {
		return fmt.Errorf("writing %s: %w", r.path, err)
	}
	r.log.Debug("resolv.conf is a mount point; writing in place", zap.String("path", r.path))
	if err := r.writeInPlace(data, attrs, rec); err != nil {
		return fmt.Errorf("writing %s in place (it is a mount point): %w", r.path, err)
	}
	return nil
}

func (r *resolvConfDNS) writeSynced(name string, data []byte, attrs fileAttrs) error {
	f, err := r.fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, attrs.Perm)
	if err != nil {
		return err
	}
	return finishWrite(f, data, attrs)
}

// writeInPlace rewrites the file at path in place, which is not atomic: data
// goes over the old bytes from the start, and only then is the file cut to
// length, so that a kill at any moment leaves data's first bytes over the old
// file's (never an empty file, as opening with O_TRUNC would). The old bytes
// and data are journalled in rec first, for the repair to know each of those
// states for the agent's.
func (r *resolvConfDNS) writeInPlace(data []byte, attrs fileAttrs, rec *resolvConfJournal) error {
	old, err := r.fsys.ReadFile(r.path)
	if err != nil {
		return err
	}
	next := *rec
	next.InPlace = &inPlaceWrite{From: old, To: data}
	if err := r.journal.write(&next); err != nil {
		return err
	}
	rec.InPlace = next.InPlace
	// O_NOFOLLOW: never write through a symlink into another program's file.
	f, err := r.fsys.OpenFile(r.path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	return finishWrite(f, data, attrs)
}

// finishWrite applies attrs (the mode past the umask), writes data from the
// start, cuts the file to its length, syncs and closes f.
func finishWrite(f resolvFile, data []byte, attrs fileAttrs) error {
	err := f.Chmod(attrs.Perm)
	if err == nil && (attrs.UID >= 0 || attrs.GID >= 0) {
		err = f.Chown(attrs.UID, attrs.GID)
	}
	if err == nil && attrs.SELinux != "" {
		// Best effort: a policy that forbids relabelling leaves the default
		// label, which is still a working file.
		unix.Fsetxattr(int(f.Fd()), selinuxXattr, []byte(attrs.SELinux), 0)
	}
	if err == nil {
		_, err = f.WriteAt(data, 0)
	}
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeSymlink replaces path with a symbolic link to target.
func (r *resolvConfDNS) writeSymlink(target string) error {
	tmp := tempName(r.path)
	r.fsys.Remove(tmp)
	if err := r.fsys.Symlink(target, tmp); err != nil {
		return fmt.Errorf("restoring symlink %s -> %s: %w", r.path, target, err)
	}
	if err := r.fsys.Rename(tmp, r.path); err != nil {
		r.fsys.Remove(tmp)
		return fmt.Errorf("restoring symlink %s -> %s: %w", r.path, target, err)
	}
	syncDir(filepath.Dir(r.path))
	return nil
}
