package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// The diagnostics bundle (`ztdiag -o FILE`) is gathered here, as root, and
// written by ztdiag. It holds what an administrator or support needs to
// see why the agent does what it does: the status, the effective settings
// and their sources, the config in force, routes and steering rules, the
// resolver's state, the stub map, the recent logs, the versions and the
// OS. Secrets never enter it: the status and settings carry them redacted
// (tenantapi.Secret), the logs never hold them, and every file is scrubbed
// of the agent's own secret parameters besides, in case one slipped in.

// Log bytes in a bundle: the newest of each file, at most bundleLogBudget
// in all, the current file first.
const (
	bundleLogFile   = 2 << 20
	bundleLogBudget = 4 << 20
)

// resolverFiles are the OS resolver's files shown as they are.
var resolverFiles = map[string][]string{
	"linux":  {"/etc/resolv.conf"},
	"darwin": {"/etc/resolv.conf"},
}

func (a *Agent) serveBundle(w http.ResponseWriter, req *http.Request) {
	var br ctlapi.BundleRequest
	if err := tenantapi.DecodeStrict(http.MaxBytesReader(w, req.Body, 4<<10), &br); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bundle request: %w", err))
		return
	}
	b := a.bundle(br.Anonymize)
	a.log.Info("diagnostics bundle gathered", zap.Int("files", len(b.Files)), zap.Bool("anonymized", br.Anonymize))
	writeJSON(w, http.StatusOK, b)
}

// bundle gathers the diagnostics bundle.
func (a *Agent) bundle(anonymize bool) ctlapi.Bundle {
	st := a.Status()
	var b ctlapi.Bundle
	add := func(name string, v any) {
		j, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			j = []byte(fmt.Sprintf("%q\n", err.Error()))
		}
		b.Files = append(b.Files, ctlapi.BundleFile{Name: name, Data: string(j) + "\n"})
	}
	host, _ := os.Hostname()
	add("version.json", map[string]string{"agent": a.cfg.Version, "go": runtime.Version(), "os": runtime.GOOS,
		"arch": runtime.GOARCH, "hostname": host})
	add("status.json", st)
	add("settings.json", st.Settings)
	add("routes.json", map[string]any{"tun": st.TUN, "apps": st.Apps})
	add("stubs.json", st.Stubs)
	resolver := map[string]any{"proxy": st.DNS}
	for _, f := range resolverFiles[runtime.GOOS] {
		if data, err := os.ReadFile(f); err == nil {
			resolver[f] = string(data)
		} else {
			resolver[f] = err.Error()
		}
	}
	add("resolver.json", resolver)
	if p, _ := a.current(); p != nil {
		if sc := p.synced.Load(); sc != nil {
			// The synced config is kept without its steering part, which
			// the tenant's snapshot holds (before the steering switch).
			cfg := *sc.cfg
			if snap := p.tenantSnap.Load(); snap != nil {
				cfg.Steering = *snap.Config()
			}
			add("config.json", map[string]any{"source": sc.source, "etag": sc.etag, "fetched": sc.fetched, "config": &cfg})
		}
	} else {
		add("config.json", "the agent is not running: no config in force")
	}
	b.Files = append(b.Files, a.bundleLogs()...)
	install, eff, _ := a.settings.get()
	secrets := secretValues(install, eff)
	if p, _ := a.current(); p != nil {
		// The tenant's tamper-protection password hash is in the config.
		secrets = append(secrets, p.tenantSnap.Load().Client().TamperPassword)
	}
	b.Redact(secrets)
	if anonymize {
		an := ctlapi.NewAnonymizer()
		an.Add("host", host)
		if h, _, ok := strings.Cut(host, "."); ok {
			an.Add("host", h)
		}
		an.Add("user", st.Enrollment.User)
		for _, s := range st.Stubs {
			an.Add("host", s.FQDN)
		}
		for _, app := range st.Apps {
			for _, h := range app.Hosts {
				if _, err := netip.ParsePrefix(h); err != nil {
					an.Add("host", strings.TrimPrefix(h, "*."))
				}
			}
		}
		b.Anonymize(an)
	}
	return b
}

// bundleLogs are the ends of the agent's log files.
func (a *Agent) bundleLogs() []ctlapi.BundleFile {
	if a.cfg.Logs == nil {
		return []ctlapi.BundleFile{{Name: "logs/README", Data: "this agent writes no log file\n"}}
	}
	var out []ctlapi.BundleFile
	budget := int64(bundleLogBudget)
	for _, f := range a.cfg.Logs.Files() {
		if budget <= 0 {
			break
		}
		data, err := tail(f, min(budget, bundleLogFile))
		if err != nil {
			data = err.Error() + "\n"
		}
		budget -= int64(len(data))
		out = append(out, ctlapi.BundleFile{Name: path.Join("logs", filepath.Base(f)), Data: data})
	}
	return out
}

// tail returns the last n bytes of file, from the start of a line.
func tail(file string, n int64) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	// Read one byte more than n, to see whether the cut falls at the
	// start of a line, and drop what comes before the first whole line.
	off := max(fi.Size()-n-1, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return "", err
	}
	if off > 0 {
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b), nil
}

// secretValues are the secret install parameters' values.
func secretValues(ps ...enroll.Params) []string {
	var out []string
	for _, p := range ps {
		for _, s := range []tenantapi.Secret{p.Token, p.EnrollAuthToken, p.EnrollEncryptionToken, p.UserKey} {
			if s != "" {
				out = append(out, string(s))
			}
		}
	}
	return out
}
