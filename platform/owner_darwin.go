package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// NewOwnerLookup returns the macOS lookup. libproc (proc_pidfdinfo) needs cgo,
// which the agent is built without, and the kernel's pcblist sysctls carry no
// PIDs, so the socket's PID comes from lsof (/usr/sbin/lsof, part of every
// macOS). The executable path comes from the kern.procargs2 sysctl and the
// AppID from the enclosing .app bundle's Info.plist. An lsof run costs tens of
// milliseconds: at most lsofParallel run at once.
func NewOwnerLookup(log *zap.Logger) OwnerLookup {
	return &darwinOwners{
		log:     log.Named("owner"),
		lsof:    "/usr/sbin/lsof",
		sem:     make(chan struct{}, lsofParallel),
		owners:  newTTLCache[int, Owner](ownerTTL, ownerCacheSize),
		bundles: newTTLCache[string, string](bundleTTL, ownerCacheSize),
	}
}

const (
	lsofParallel = 2
	lsofTimeout  = 2 * time.Second
	// An app's identifier changes only when it is replaced.
	bundleTTL = time.Minute
	// Info.plist files are a few kilobytes; refuse to read a huge one.
	maxInfoPlist = 1 << 20
)

type darwinOwners struct {
	log     *zap.Logger
	lsof    string
	sem     chan struct{}
	owners  *ttlCache[int, Owner]
	bundles *ttlCache[string, string] // .app directory -> CFBundleIdentifier
}

// Lookup implements OwnerLookup.
func (d *darwinOwners) Lookup(proto string, local, remote netip.AddrPort) (Owner, error) {
	m, err := newSockMatcher(proto, local, remote)
	if err != nil {
		return Owner{}, err
	}
	out, err := d.runLsof(lsofArgs(m))
	if err != nil {
		return Owner{}, fmt.Errorf("socket owner: %w", err)
	}
	rows, err := parseLsof(out)
	if err != nil {
		return Owner{}, fmt.Errorf("socket owner: %w", err)
	}
	row, ok := m.bestRow(rows)
	if !ok {
		return Owner{}, fmt.Errorf("%w: no %s socket at %v", ErrOwnerNotFound, proto, local)
	}
	return d.owner(row), nil
}

// runLsof runs lsof; its exit status 1 with no output means nothing matched.
func (d *darwinOwners) runLsof(args []string) ([]byte, error) {
	d.sem <- struct{}{}
	defer func() { <-d.sem }()
	ctx, cancel := context.WithTimeout(context.Background(), lsofTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, d.lsof, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 && ctx.Err() == nil {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lsof: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// owner completes lsof's row with the executable path and bundle ID.
func (d *darwinOwners) owner(row sockRow) Owner {
	if o, ok := d.owners.get(row.PID); ok {
		return o
	}
	o := Owner{PID: row.PID, UID: row.UID, Process: row.Process}
	if buf, err := unix.SysctlRaw("kern.procargs2", row.PID); err != nil {
		d.log.Debug("no executable path", zap.Int("pid", row.PID), zap.Error(err))
	} else if path, err := parseProcArgs2(buf); err != nil {
		d.log.Debug("no executable path", zap.Int("pid", row.PID), zap.Error(err))
	} else {
		o.Path, o.Process = path, filepath.Base(path)
		o.AppID = d.bundleID(path)
	}
	d.owners.put(row.PID, o)
	return o
}

// bundleID returns the identifier of the app bundle holding exe, or "".
func (d *darwinOwners) bundleID(exe string) string {
	app := appBundle(exe)
	if app == "" {
		return ""
	}
	if id, ok := d.bundles.get(app); ok {
		return id
	}
	id, err := readBundleID(filepath.Join(app, "Contents", "Info.plist"))
	if err != nil && !errors.Is(err, errNoBundleID) {
		d.log.Debug("no bundle identifier", zap.String("app", app), zap.Error(err))
	}
	d.bundles.put(app, id)
	return id
}

func readBundleID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInfoPlist+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxInfoPlist {
		return "", errors.New("Info.plist too large")
	}
	if bytes.HasPrefix(data, []byte("bplist")) {
		if data, err = plistToXML(path); err != nil {
			return "", err
		}
	}
	return bundleIDFromPlist(data)
}
