package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// NewDNSConfigurator returns the Linux resolver configurator. Leftovers of a
// run that did not stop cleanly (in either mode) are repaired first. Then:
//
//   - When systemd-resolved manages the system (/etc/resolv.conf is a symlink
//     to its stub file and it answers on the system bus), the agent's link
//     gets per-link DNS and routing domains over D-Bus ("systemd-resolved"
//     mode). This is also how NetworkManager and netplan systems that hand
//     DNS to resolved are handled: their per-link settings stay theirs.
//   - Otherwise /etc/resolv.conf is written directly with the original saved
//     ("resolv.conf" mode). A file NetworkManager, resolvconf(8) or dhclient
//     writes is recognised by its header; when one of them rewrites it while
//     the agent runs (a new network), the agent takes their version as the new
//     original and learns the new upstreams from it. When /etc/resolv.conf was
//     a symlink to their file (/run/NetworkManager/resolv.conf,
//     /run/resolvconf/resolv.conf, /run/systemd/resolve/resolv.conf), the
//     symlink is replaced by the agent's file, which those programs then leave
//     alone (NetworkManager's rc-manager=symlink, resolvconf), while they keep
//     updating their own file: Upstreams reads the current servers there.
func NewDNSConfigurator(stateDir string, log *zap.Logger) (DNSConfigurator, error) {
	return newLinuxDNS("/etc/resolv.conf", stateDir, log, func() (*dbus.Conn, error) {
		return dbus.ConnectSystemBus()
	})
}

// newLinuxDNS picks the mode for the resolv.conf at path; dial connects to
// the bus where systemd-resolved would answer.
func newLinuxDNS(path, stateDir string, log *zap.Logger, dial func() (*dbus.Conn, error)) (DNSConfigurator, error) {
	if log == nil {
		log = zap.NewNop()
	}
	rc, err := newResolvConfDNS(path, stateDir, log, osFS{})
	if err != nil {
		return nil, err
	}
	rc.watchEvery = resolvConfWatchInterval
	if err := repairResolved(dial, stateDir, log); err != nil {
		return nil, err
	}
	if !isResolvedStub(path) {
		return rc, nil
	}
	conn, err := dial()
	if err == nil {
		err = resolvedAnswers(conn)
		conn.Close()
	}
	if err != nil {
		log.Warn("resolv.conf points at systemd-resolved's stub, but resolved does not answer on D-Bus; "+
			"writing resolv.conf instead", zap.String("path", path), zap.Error(err))
		return rc, nil
	}
	return newResolvedDNS(dial, stateDir, log)
}

// isResolvedStub reports whether path is a symlink to systemd-resolved's stub
// resolv.conf (nameserver 127.0.0.53): the runtime stub-resolv.conf, or the
// static one systemd ships. A symlink to /run/systemd/resolve/resolv.conf is
// not: that file lists the upstream servers, which libc then queries without
// resolved, so routing domains would not apply.
func isResolvedStub(path string) bool {
	target, err := os.Readlink(path)
	if err != nil {
		return false
	}
	return filepath.Base(target) == "stub-resolv.conf" ||
		strings.HasSuffix(target, "lib/systemd/resolv.conf")
}

// resolvConfJournalName is the journal's file name in the state directory.
const resolvConfJournalName = "dns-resolvconf.journal"

// resolvConfJournal records the original resolv.conf before the agent first
// writes it.
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

// resolvConfDNS manages a resolv.conf file. Every change is preceded by a
// journal entry holding the original, so Restore (or the next start, after a
// crash) puts back exactly the bytes, mode and symlink that were there.
type resolvConfDNS struct {
	path    string
	log     *zap.Logger
	journal journal
	fsys    resolvFS // osFS; one that injects faults in tests

	// watchEvery, when non-zero, is how often the file is checked for a
	// rewrite by another program between the first Set and Restore.
	watchEvery time.Duration

	mu    sync.Mutex
	saved *resolvConfJournal // non-nil while the agent manages path
	cfg   DNSConfig          // last Set
	watch *poller            // running while the agent manages path
}

func newResolvConfDNS(path, stateDir string, log *zap.Logger, fsys resolvFS) (*resolvConfDNS, error) {
	if log == nil {
		log = zap.NewNop()
	}
	j, err := newJournal(stateDir, resolvConfJournalName)
	if err != nil {
		return nil, err
	}
	r := &resolvConfDNS{path: path, log: log.Named("dns"), journal: j, fsys: fsys}
	removeStaleTemps(fsys, path)
	if err := r.repair(); err != nil {
		return nil, err
	}
	b, err := fsys.ReadFile(path)
	if err == nil && resolvConfManager(b) == "ztagent" {
		return nil, fmt.Errorf("%s was written by ztagent but %s holds no record of the original "+
			"(state directory wiped?): replace %s with your resolver configuration, then start again",
			path, j.path, path)
	}
	return r, nil
}

// repair restores the original left in the journal by a run that did not stop
// cleanly.
func (r *resolvConfDNS) repair() error {
	var saved resolvConfJournal
	ok, err := r.journal.read(&saved)
	if err != nil || !ok {
		return err
	}
	if saved.Path != r.path {
		return fmt.Errorf("journal %s is for %s, not %s: restore that file from the journal by hand, then delete it",
			r.journal.path, saved.Path, r.path)
	}
	r.log.Warn("restoring resolv.conf left by a previous run that did not stop cleanly",
		zap.String("path", r.path), zap.Bool("symlink", saved.Symlink != ""))
	if err := r.restoreFrom(&saved); err != nil {
		return fmt.Errorf("repairing %s from journal %s: %w", r.path, r.journal.path, err)
	}
	return r.journal.clear()
}

// Mode implements DNSConfigurator.
func (r *resolvConfDNS) Mode() string { return "resolv.conf" }

// Upstreams implements DNSConfigurator: the nameservers of the original file
// (the journalled one while the agent manages it, else the current one).
func (r *resolvConfDNS) Upstreams() ([]netip.AddrPort, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b []byte
	if r.saved != nil && r.isOurs() {
		b = r.saved.Original
		if cur, ok := r.symlinkTargetNow(); ok {
			b = cur
		}
	} else {
		// Not managing it, or another program has rewritten it since (a
		// new network): what is there now names the system's resolvers.
		var err error
		if b, err = r.fsys.ReadFile(r.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading %s: %w", r.path, err)
		}
	}
	return upstreamsOf(parseResolvConf(b), r.cfg.Servers), nil
}

// symlinkTargetNow reads the file the original resolv.conf symlink pointed
// to, which its owner (NetworkManager, resolvconf, systemd-resolved) keeps
// current as networks change while the agent's file stands in its place.
func (r *resolvConfDNS) symlinkTargetNow() ([]byte, bool) {
	target := r.saved.Symlink
	if target == "" {
		return nil, false
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(r.path), target)
	}
	b, err := r.fsys.ReadFile(target)
	if err != nil || resolvConfManager(b) == "ztagent" {
		return nil, false
	}
	return b, true
}

// Set implements DNSConfigurator. The first Set journals the original before
// writing anything. If another program (NetworkManager, dhclient, resolvconf)
// has rewritten the file since the last Set, its version becomes the original
// to restore, and is journalled likewise before it is replaced.
func (r *resolvConfDNS) Set(cfg DNSConfig) error {
	if len(cfg.Servers) == 0 {
		return errors.New("resolv.conf: no DNS servers to set")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.setLocked(cfg); err != nil {
		return err
	}
	if r.watch == nil && r.watchEvery > 0 {
		r.watch = startPoller(r.watchEvery, r.reapply)
	}
	return nil
}

func (r *resolvConfDNS) setLocked(cfg DNSConfig) error {
	if r.saved != nil && !r.isOurs() {
		r.log.Info("resolv.conf was rewritten by another program; taking it as the original",
			zap.String("path", r.path))
		r.saved = nil
	}
	if r.saved == nil {
		saved, err := r.snapshot()
		if err != nil {
			return err
		}
		if err := r.journal.write(saved); err != nil {
			return err
		}
		r.saved = saved
		r.log.Info("managing resolv.conf", zap.String("path", r.path),
			zap.String("symlink", saved.Symlink), zap.String("manager", saved.Manager))
	}
	hint := fmt.Sprintf("restore the original from %s (field \"original\", base64).", r.journal.path)
	data := renderResolvConf(parseResolvConf(r.saved.Original), cfg, hint)
	attrs := r.saved.fileAttrs
	if !r.saved.Existed || r.saved.Symlink != "" {
		attrs = newFileAttrs
	}
	if err := r.writeFile(data, attrs); err != nil {
		return err
	}
	r.cfg = cfg
	return nil
}

// reapply points resolv.conf at the agent again after another program
// (dhclient at a lease renewal, NetworkManager, resolvconf) has replaced it:
// their file becomes the original to restore, as at Set.
func (r *resolvConfDNS) reapply() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saved == nil || r.isOurs() {
		return
	}
	if err := r.setLocked(r.cfg); err != nil {
		r.log.Error("pointing resolv.conf at the agent again failed", zap.String("path", r.path), zap.Error(err))
	}
}

// Restore implements DNSConfigurator.
func (r *resolvConfDNS) Restore() error {
	r.mu.Lock()
	w := r.watch
	r.watch = nil
	r.mu.Unlock()
	if w != nil {
		w.stop() // first, and unlocked: it may be re-applying
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saved == nil {
		return nil
	}
	if err := r.restoreFrom(r.saved); err != nil {
		return fmt.Errorf("restoring %s: %w (the original is kept in %s)", r.path, err, r.journal.path)
	}
	if err := r.journal.clear(); err != nil {
		return err
	}
	r.saved, r.cfg = nil, DNSConfig{}
	r.log.Info("restored resolv.conf", zap.String("path", r.path))
	return nil
}

// snapshot records what is at path now.
func (r *resolvConfDNS) snapshot() (*resolvConfJournal, error) {
	s := &resolvConfJournal{Version: 1, Intent: "set", Path: r.path}
	fi, err := r.fsys.Lstat(r.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("resolv.conf: %w", err)
	}
	s.Existed = true
	s.fileAttrs = attrsOf(r.path, fi)
	if fi.Mode()&fs.ModeSymlink != 0 {
		if s.Symlink, err = r.fsys.Readlink(r.path); err != nil {
			return nil, fmt.Errorf("resolv.conf: %w", err)
		}
	}
	// For a symlink this reads the target; a dangling link reads as empty.
	s.Original, err = r.fsys.ReadFile(r.path)
	if err != nil && !(s.Symlink != "" && errors.Is(err, fs.ErrNotExist)) {
		return nil, fmt.Errorf("resolv.conf: %w", err)
	}
	s.Manager = resolvConfManager(s.Original)
	return s, nil
}

// restoreFrom puts path back as saved describes it, unless the file there is
// no longer the agent's: then another program (NetworkManager, dhclient, an
// administrator) has written a newer configuration, or the agent stopped
// before writing its own, and either way what is there now is what must stay.
func (r *resolvConfDNS) restoreFrom(saved *resolvConfJournal) error {
	if !r.isOurs() {
		r.log.Warn("resolv.conf is no longer the agent's; leaving it as it is", zap.String("path", r.path))
		return nil
	}
	switch {
	case !saved.Existed:
		if err := r.fsys.Remove(r.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		syncDir(filepath.Dir(r.path))
		return nil
	case saved.Symlink != "":
		return r.writeSymlink(saved.Symlink)
	default:
		return r.writeFile(saved.Original, saved.fileAttrs)
	}
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

// isOurs reports whether path is a regular file written by the agent.
func (r *resolvConfDNS) isOurs() bool {
	fi, err := r.fsys.Lstat(r.path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	b, err := r.fsys.ReadFile(r.path)
	return err == nil && resolvConfManager(b) == "ztagent"
}
