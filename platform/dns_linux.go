package platform

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"go.uber.org/zap"
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
	opts := defaultWatchOpts()
	rc.watchOpts = &opts
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

// resolvConfDNS manages a resolv.conf file. Every change is preceded by a
// journal entry holding the original, so Restore (or the next start, after a
// crash) puts back exactly the bytes, mode and symlink that were there. The
// journal entry goes only once the original is back and read back.
//
// Its state (saved, cfg, written) changes only once the operation that
// justifies the change has succeeded: a failed read, of the file or the
// journal, never makes it forget that it manages the file or what the
// original was.
type resolvConfDNS struct {
	path    string
	log     *zap.Logger
	journal journal
	fsys    resolvFS // osFS; one that injects faults in tests

	// watchOpts, when non-nil, are how the file is watched for a rewrite
	// by another program between the first Set and Restore (fileWatch).
	watchOpts *watchOpts

	mu      sync.Mutex
	saved   *resolvConfJournal // as journalled; non-nil while the agent manages path
	cfg     DNSConfig          // last Set that was written
	written []byte             // the file that Set wrote
	watch   *fileWatch         // running while the agent manages path
	failing bool               // the watcher's last check failed (logged once)
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
// cleanly: whatever that run was doing when it was killed, the file is then
// the original, the agent's, or one of the agent's writes interrupted (see
// resolvConfJournal.stateOf), and the original is put back. A file that is
// none of these was written by another program since; it is kept, and the
// journal dropped, as at Restore.
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
	if r.saved != nil {
		now, err := r.readNow()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", r.path, err)
		}
		if r.saved.stateOf(now) == fileAgents {
			b := r.saved.Original
			if cur, ok := r.symlinkTargetNow(); ok {
				b = cur
			}
			return upstreamsOf(parseResolvConf(b), r.cfg.Servers), nil
		}
	}
	// Not managing it, or another program has rewritten it since (a new
	// network): what is there now names the system's resolvers.
	b, err := r.fsys.ReadFile(r.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", r.path, err)
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
	now, err := r.readNow()
	if err != nil {
		return fmt.Errorf("reading %s: %w", r.path, err)
	}
	if err := r.setLocked(cfg, now); err != nil {
		return err
	}
	if r.watch == nil && r.watchOpts != nil {
		r.watch = watchFile(r.path, *r.watchOpts, r.log, r.reapply)
	}
	return nil
}

// setLocked writes the agent's file for cfg over now, what is at the path.
func (r *resolvConfDNS) setLocked(cfg DNSConfig, now fileNow) error {
	saved := r.saved
	if saved != nil && saved.stateOf(now) == fileTheirs {
		r.log.Info("resolv.conf was rewritten by another program; taking it as the original",
			zap.String("path", r.path))
		saved = nil
	}
	if saved == nil {
		var err error
		if saved, err = r.snapshot(now); err != nil {
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
	data := renderResolvConf(parseResolvConf(saved.Original), cfg, hint)
	attrs := saved.fileAttrs
	if !saved.Existed || saved.Symlink != "" {
		attrs = newFileAttrs
	}
	if err := r.writeFile(data, attrs, saved); err != nil {
		return err
	}
	// Routing domains have no place in resolv.conf (renderResolvConf), and
	// with 10,000 apps they are 30,000 names: not kept for the rewrites.
	cfg.Domains = nil
	r.cfg, r.written = cfg, data
	return nil
}

// reapply, run by the watcher, puts the agent's file back when it is not as
// the agent wrote it. Another program's file (dhclient at a lease renewal,
// NetworkManager, resolvconf) becomes the original to restore, as at Set; an
// empty or partly written file is the agent's own, written again over the
// same original. When the file cannot be read, nothing is decided.
func (r *resolvConfDNS) reapply() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saved == nil {
		return
	}
	now, err := r.readNow()
	if err == nil {
		if now.regular() && bytes.Equal(now.content, r.written) {
			r.checked(nil)
			return
		}
		err = r.setLocked(r.cfg, now)
	}
	r.checked(err)
}

// checked logs the outcome of a watcher check: the first failure of a run
// of them as an error, the end of the run, and nothing in between.
func (r *resolvConfDNS) checked(err error) {
	switch {
	case err != nil && !r.failing:
		r.log.Error("pointing resolv.conf at the agent again failed; retrying quietly",
			zap.String("path", r.path), zap.Error(err))
	case err == nil && r.failing:
		r.log.Info("resolv.conf points at the agent again", zap.String("path", r.path))
	}
	r.failing = err != nil
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
	r.saved, r.cfg, r.written = nil, DNSConfig{}, nil
	r.log.Info("restored resolv.conf", zap.String("path", r.path))
	return nil
}

// restoreFrom puts path back as saved describes it when the file there is
// the agent's, and reads it back to check. A file that is no longer the
// agent's is another program's newer configuration (NetworkManager,
// dhclient, an administrator), and stays. An empty or partly written file
// is the agent's (see resolvConfJournal.stateOf): the original goes back.
func (r *resolvConfDNS) restoreFrom(saved *resolvConfJournal) error {
	now, err := r.readNow()
	if err != nil {
		return err
	}
	switch saved.stateOf(now) {
	case fileOriginal:
		return nil
	case fileTheirs:
		r.log.Warn("resolv.conf was rewritten by another program; leaving theirs", zap.String("path", r.path))
		return nil
	}
	if err := r.putBack(saved); err != nil {
		return err
	}
	if now, err = r.readNow(); err != nil {
		return fmt.Errorf("reading it back: %w", err)
	}
	if !saved.isOriginal(now) {
		return errors.New("read back, it is not the original")
	}
	return nil
}

// putBack writes the original saved describes.
func (r *resolvConfDNS) putBack(saved *resolvConfJournal) error {
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
		return r.writeFile(saved.Original, saved.fileAttrs, saved)
	}
}
