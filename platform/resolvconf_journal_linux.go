package platform

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// resolvConfJournalName is the journal's file name in the state directory.
const resolvConfJournalName = "dns-resolvconf.journal"

// resolvConfJournal records the original resolv.conf before the agent first
// writes it, and each in-place write before it starts.
type resolvConfJournal struct {
	Version int    `json:"version"`
	Intent  string `json:"intent"` // "set": the agent manages Path
	Path    string `json:"path"`
	// Existed is false when there was no file at Path.
	Existed bool `json:"existed"`
	// Symlink is the link target when Path was a symbolic link (for example
	// to systemd-resolved's or NetworkManager's file); Original is then the
	// content it pointed to, kept to learn the upstreams.
	Symlink string `json:"symlink,omitempty"`
	// fileAttrs are the regular file's mode, owner and SELinux label.
	fileAttrs
	Original []byte `json:"original"`
	Manager  string `json:"manager,omitempty"`
	// InPlace is the last in-place write (Path is a mount point), recorded
	// before it started.
	InPlace *inPlaceWrite `json:"in_place,omitempty"`
}

// inPlaceWrite is a rewrite of the file in place: To written over From. A
// kill part-way leaves To's first bytes over the rest of From (see
// interruptedWrite), a file the repair must know for the agent's although
// it may not even start with the agent's marker.
type inPlaceWrite struct {
	From []byte `json:"from"`
	To   []byte `json:"to"`
}

// fileAttrs are what a rewrite of resolv.conf must keep besides the bytes:
// replacing the file by rename would otherwise give it our umask, our owner
// and the directory's default SELinux type (etc_t instead of net_conf_t,
// which confined resolvers may then not read).
type fileAttrs struct {
	Perm    fs.FileMode `json:"perm"`
	UID     int         `json:"uid"`
	GID     int         `json:"gid"`
	SELinux string      `json:"selinux,omitempty"`
}

// newFileAttrs are used where there was no regular file to copy them from.
var newFileAttrs = fileAttrs{Perm: 0o644, UID: -1, GID: -1}

const selinuxXattr = "security.selinux"

// fileNow is what is at the path at the moment of a decision.
type fileNow struct {
	fi      fs.FileInfo // nil when there is nothing
	symlink string      // the target, when a symbolic link
	content []byte      // the bytes, when a regular file
}

func (n fileNow) regular() bool { return n.fi != nil && n.fi.Mode().IsRegular() }

// readNow reads what is at the path. An error means the agent cannot tell
// (out of descriptors, say), and no decision may be taken on it.
func (r *resolvConfDNS) readNow() (fileNow, error) {
	var n fileNow
	fi, err := r.fsys.Lstat(r.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return n, nil
	case err != nil:
		return n, err
	}
	n.fi = fi
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		n.symlink, err = r.fsys.Readlink(r.path)
	case fi.Mode().IsRegular():
		n.content, err = r.fsys.ReadFile(r.path)
	}
	return n, err
}

// fileState is whose the file at the path is, as the journal tells.
type fileState int

const (
	// fileTheirs: another program (NetworkManager, dhclient, an
	// administrator) has written it since the journal was written.
	fileTheirs fileState = iota
	// fileOriginal: it is as the journal records it.
	fileOriginal
	// fileAgents: the agent's, or one of the agent's writes interrupted
	// (see agentWritten and interruptedWrite).
	fileAgents
)

// stateOf tells whose the file now is. An empty file, or one the agent was
// killed writing, is the agent's: it is never taken for a program's newer
// configuration, which would drop the original.
func (j *resolvConfJournal) stateOf(now fileNow) fileState {
	switch {
	case j.isOriginal(now):
		return fileOriginal
	case !now.regular():
		return fileTheirs
	case agentWritten(now.content):
		return fileAgents
	case j.InPlace != nil && interruptedWrite(now.content, j.InPlace.From, j.InPlace.To):
		return fileAgents
	}
	return fileTheirs
}

// isOriginal reports whether now is what the journal records: the same
// absence, symlink target or bytes.
func (j *resolvConfJournal) isOriginal(now fileNow) bool {
	switch {
	case !j.Existed:
		return now.fi == nil
	case j.Symlink != "":
		return now.fi != nil && now.fi.Mode()&fs.ModeSymlink != 0 && now.symlink == j.Symlink
	default:
		return now.regular() && bytes.Equal(now.content, j.Original)
	}
}

// snapshot is the journal of the original now at the path.
func (r *resolvConfDNS) snapshot(now fileNow) (*resolvConfJournal, error) {
	s := &resolvConfJournal{Version: 1, Intent: "set", Path: r.path}
	if now.fi == nil {
		return s, nil
	}
	s.Existed = true
	s.fileAttrs = attrsOf(r.path, now.fi)
	s.Symlink = now.symlink
	s.Original = now.content
	if s.Symlink != "" {
		// The target, to learn the upstreams; a dangling link reads as empty.
		b, err := r.fsys.ReadFile(r.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("resolv.conf: %w", err)
		}
		s.Original = b
	}
	s.Manager = resolvConfManager(s.Original)
	if now.symlink == "" && s.Manager == "ztagent" {
		return nil, fmt.Errorf("%s was written by ztagent but %s holds no record of the original "+
			"(state directory wiped?): replace %s with your resolver configuration, then start again",
			r.path, r.journal.path, r.path)
	}
	return s, nil
}

// attrsOf reads the attributes of the file at path, described by fi.
func attrsOf(path string, fi fs.FileInfo) fileAttrs {
	a := fileAttrs{Perm: fi.Mode().Perm(), UID: -1, GID: -1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		a.UID, a.GID = int(st.Uid), int(st.Gid)
	}
	// Without SELinux the attribute is absent (ENODATA) or unsupported.
	buf := make([]byte, 256)
	if n, err := unix.Lgetxattr(path, selinuxXattr, buf); err == nil && n > 0 {
		a.SELinux = strings.TrimRight(string(buf[:n]), "\x00")
	}
	return a
}
