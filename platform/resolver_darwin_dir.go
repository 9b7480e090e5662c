package platform

// The macOS configurator's file handling, built on every OS so that its
// journal and repair are tested everywhere; dns_darwin.go wires it to
// /etc/resolver and scutil.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform/atomicfile"
)

// resolverJournalName is the journal's file name in the state directory.
const resolverJournalName = "dns-resolver.journal"

// resolverDirJournal lists every file in Dir the agent has written or is
// about to write, with what was there before.
type resolverDirJournal struct {
	Version int                   `json:"version"`
	Intent  string                `json:"intent"` // "set"
	Dir     string                `json:"dir"`
	Files   []resolverJournalFile `json:"files"`
}

type resolverJournalFile struct {
	Name string `json:"name"`
	// Existed is true when another program's file was there; Original is
	// then its content, put back at Restore.
	Existed  bool   `json:"existed"`
	Original []byte `json:"original,omitempty"`
}

// resolverDirDNS writes one resolver(5) file per private domain into dir.
type resolverDirDNS struct {
	dir     string
	log     *zap.Logger
	journal journal
	scutil  func() ([]byte, error) // `scutil --dns` output
	// readFile reads an original before it is replaced; a seam for tests.
	readFile func(string) ([]byte, error)

	mu    sync.Mutex
	entry *resolverDirJournal // non-nil while the agent has files in dir
	cfg   DNSConfig
}

func newResolverDirDNS(dir, stateDir string, log *zap.Logger, scutil func() ([]byte, error)) (*resolverDirDNS, error) {
	if log == nil {
		log = zap.NewNop()
	}
	j, err := newJournal(stateDir, resolverJournalName)
	if err != nil {
		return nil, err
	}
	r := &resolverDirDNS{dir: dir, log: log.Named("dns"), journal: j, scutil: scutil, readFile: os.ReadFile}
	if err := r.repair(); err != nil {
		return nil, err
	}
	return r, nil
}

// repair restores what the journal of a crashed run lists, then removes any
// other file in dir that carries the agent's marker (a run whose state
// directory was lost).
func (r *resolverDirDNS) repair() error {
	var entry resolverDirJournal
	ok, err := r.journal.read(&entry)
	if err != nil {
		return err
	}
	if ok {
		if entry.Dir != r.dir {
			return fmt.Errorf("journal %s is for %s, not %s: restore those files by hand, then delete it",
				r.journal.path, entry.Dir, r.dir)
		}
		r.log.Warn("removing resolver files left by a previous run that did not stop cleanly",
			zap.String("dir", r.dir), zap.Int("files", len(entry.Files)))
		if err := r.restoreFiles(entry.Files); err != nil {
			return fmt.Errorf("repairing %s from journal %s: %w", r.dir, r.journal.path, err)
		}
		if err := r.journal.clear(); err != nil {
			return err
		}
	}
	des, err := os.ReadDir(r.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("resolver files: %w", err)
	}
	for _, de := range des {
		p := filepath.Join(r.dir, de.Name())
		if b, err := os.ReadFile(p); err == nil && de.Type().IsRegular() && isResolverFileOurs(b) {
			r.log.Warn("removing a resolver file the agent left without a journal", zap.String("path", p))
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("resolver files: %w", err)
			}
		}
	}
	return nil
}

// Mode implements DNSConfigurator.
func (r *resolverDirDNS) Mode() string { return "resolver-files" }

// Set implements DNSConfigurator. The journal lists every file about to be
// written (with the original it replaces) before the first is written.
func (r *resolverDirDNS) Set(cfg DNSConfig) error {
	plan, err := compileOSDNS("darwin", cfg)
	if err != nil {
		return fmt.Errorf("resolver files: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	entry := &resolverDirJournal{Version: 1, Intent: "set", Dir: r.dir}
	if r.entry != nil {
		entry.Files = slices.Clone(r.entry.Files)
	}
	for _, f := range plan.ResolverFiles {
		if !slices.ContainsFunc(entry.Files, func(j resolverJournalFile) bool { return j.Name == f.Name }) {
			jf, err := r.snapshot(f.Name)
			if err != nil {
				return fmt.Errorf("resolver files: %w", err)
			}
			entry.Files = append(entry.Files, jf)
		}
	}
	if err := r.journal.write(entry); err != nil {
		return err
	}
	r.entry = entry
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return fmt.Errorf("resolver files: %w", err)
	}
	for _, f := range plan.ResolverFiles {
		if err := atomicfile.Write(filepath.Join(r.dir, f.Name), f.Content, 0o644); err != nil {
			return fmt.Errorf("resolver files: %w", err)
		}
	}
	// Domains the agent no longer routes get their original back.
	var stale, keep []resolverJournalFile
	for _, j := range entry.Files {
		if slices.ContainsFunc(plan.ResolverFiles, func(f resolverFile) bool { return f.Name == j.Name }) {
			keep = append(keep, j)
		} else {
			stale = append(stale, j)
		}
	}
	if err := r.restoreFiles(stale); err != nil {
		return fmt.Errorf("resolver files: %w", err)
	}
	if len(stale) > 0 {
		entry = &resolverDirJournal{Version: 1, Intent: "set", Dir: r.dir, Files: keep}
		if err := r.journal.write(entry); err != nil {
			return err
		}
		r.entry = entry
	}
	r.cfg = cfg
	return nil
}

// snapshot records what is at dir/name before the agent writes it. A file
// already carrying the agent's marker is a leftover, not an original. Only
// "no such file" means there is no original: any other read error (out of
// descriptors, say) fails, since recording "none" would make Restore delete
// another program's file.
func (r *resolverDirDNS) snapshot(name string) (resolverJournalFile, error) {
	b, err := r.readFile(filepath.Join(r.dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return resolverJournalFile{Name: name}, nil
	case err != nil:
		return resolverJournalFile{}, err
	case isResolverFileOurs(b):
		return resolverJournalFile{Name: name}, nil
	}
	return resolverJournalFile{Name: name, Existed: true, Original: b}, nil
}

// restoreFiles puts back each file: the original where there was one, else
// nothing. A file another program has rewritten since is left as it is.
func (r *resolverDirDNS) restoreFiles(files []resolverJournalFile) error {
	var errs []error
	for _, f := range files {
		p := filepath.Join(r.dir, f.Name)
		b, err := os.ReadFile(p)
		switch {
		case err == nil && !isResolverFileOurs(b):
			if !f.Existed || !bytes.Equal(b, f.Original) {
				r.log.Warn("resolver file is no longer the agent's; leaving it", zap.String("path", p))
			}
		case f.Existed:
			errs = append(errs, atomicfile.Write(p, f.Original, 0o644))
		case err == nil:
			errs = append(errs, os.Remove(p))
		case !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Restore implements DNSConfigurator.
func (r *resolverDirDNS) Restore() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entry == nil {
		return nil
	}
	if err := r.restoreFiles(r.entry.Files); err != nil {
		return fmt.Errorf("restoring %s: %w (the originals are kept in %s)", r.dir, err, r.journal.path)
	}
	if err := r.journal.clear(); err != nil {
		return err
	}
	r.entry, r.cfg = nil, DNSConfig{}
	return nil
}

// Upstreams implements DNSConfigurator: the default resolvers `scutil --dns`
// reports. The agent's /etc/resolver files only add supplemental resolvers,
// so the default ones are the system's own while the agent runs too.
func (r *resolverDirDNS) Upstreams() ([]netip.AddrPort, error) {
	out, err := r.scutil()
	if err != nil {
		return nil, fmt.Errorf("scutil --dns: %w", err)
	}
	r.mu.Lock()
	own := slices.Clone(r.cfg.Servers)
	r.mu.Unlock()
	return slices.DeleteFunc(parseScutilDNS(out), func(a netip.AddrPort) bool {
		return slices.Contains(own, a.Addr())
	}), nil
}
