package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/steering"
)

// fakeDaemon serves the control API on a unix socket: status answers st,
// the calls that change the agent are refused as to a non-administrator,
// and every other path answers with handlers[path].
func fakeDaemon(t *testing.T, st ctlapi.Status, handlers map[string]http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ctlapi.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(st)
	})
	forbid := func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(ctlapi.ErrorResponse{Error: "this command needs root or administrator rights"})
	}
	mux.HandleFunc("POST "+ctlapi.PathSync, forbid)
	mux.HandleFunc("POST "+ctlapi.PathEnroll, forbid)
	for _, path := range []string{ctlapi.PathLog, ctlapi.PathBundle, ctlapi.PathSteering} {
		if handlers["POST "+path] == nil {
			mux.HandleFunc("POST "+path, forbid)
		}
	}
	for path, h := range handlers {
		mux.HandleFunc(path, h)
	}
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return sock
}

var connected = ctlapi.Status{
	State:      ctlapi.StateRunning,
	Enrollment: ctlapi.EnrollmentStatus{Tenant: "demo", User: "alice@demo.test", TenantURL: "https://tenant.demo.test", DeviceID: "dev-1"},
	Config:     ctlapi.ConfigStatus{Source: "tenant", ETag: "e1"},
	Tunnel:     ctlapi.TunnelStatus{State: "connected", PoP: "10.0.0.2:443"},
	DNS: ctlapi.DNSStatus{Counters: ctlapi.DNSCounters{Queries: 10, Local: 4, Forwarded: 5, CacheHits: 2,
		Delegated: 1, UpstreamErrors: 3, ServFail: 1, Saturated: 6, Malformed: 7, SocketsEvicted: 8}},
	Apps: []ctlapi.AppStatus{{ID: "web"}},
}

// TestDispatch runs ztdiag's command line as main does and checks the exit
// status and what is printed, for every command's help and the documented
// statuses: 0 done, 1 failed, 2 usage, 3 not running, 4 not permitted.
func TestDispatch(t *testing.T) {
	sock := fakeDaemon(t, connected, nil)
	root := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathLog: func(w http.ResponseWriter, r *http.Request) {
		var req ctlapi.LogRequest
		json.NewDecoder(r.Body).Decode(&req)
		json.NewEncoder(w).Encode(ctlapi.LogStatus{Level: req.Level, File: "/l/ztagent.log", MaxMB: req.MaxMB, Keep: 5})
	}})
	none := filepath.Join(t.TempDir(), "none.sock")
	cases := []struct {
		name string
		args []string
		code int
		out  string // in what is printed on standard output
	}{
		{"help", []string{"--help"}, cli.ExitOK, "nsdiag's flags"},
		{"-h", []string{"-h"}, cli.ExitOK, "exit status: 0 done"},
		{"help command", []string{"help"}, cli.ExitOK, "usage: ztdiag"},
		{"status help", []string{"status", "--help"}, cli.ExitOK, "usage: ztdiag status"},
		{"match help", []string{"match", "--help"}, cli.ExitOK, "-config"},
		{"regex help", []string{"regex", "--help"}, cli.ExitOK, "usage: ztdiag regex"},
		{"update help", []string{"update", "--help"}, cli.ExitOK, "usage: ztdiag update"},
		{"version help", []string{"version", "--help"}, cli.ExitOK, "usage: ztdiag -v"},
		{"-e help", []string{"-e", "--help"}, cli.ExitOK, "usage: ztdiag -e"},
		{"-f help", []string{"-f", "--help"}, cli.ExitOK, "usage: ztdiag -f"},
		{"-n help", []string{"-n", "-h"}, cli.ExitOK, "usage: ztdiag -n"},
		{"-x help", []string{"-x", "--help"}, cli.ExitOK, "usage: ztdiag regex"},
		{"no command", nil, cli.ExitUsage, ""},
		{"unknown command", []string{"restart"}, cli.ExitUsage, ""},
		{"unknown flag", []string{"--bogus"}, cli.ExitUsage, ""},
		{"unknown subcommand flag", []string{"status", "--bogus"}, cli.ExitUsage, ""},
		{"two nsdiag flags", []string{"-f", "-n"}, cli.ExitUsage, ""},
		{"-x too few", []string{"-x", "abc"}, cli.ExitUsage, ""},
		{"not running", []string{"--socket", none, "status"}, cli.ExitNotRunning, ""},
		{"-f not running", []string{"--socket", none, "-f"}, cli.ExitNotRunning, ""},
		{"not permitted", []string{"--socket", sock, "-u"}, cli.ExitNotPermitted, ""},
		{"update not permitted", []string{"--socket", sock, "update"}, cli.ExitNotPermitted, ""},
		{"-e not permitted", []string{"--socket", sock, "-e"}, cli.ExitNotPermitted, ""},
		{"status", []string{"--socket", sock, "status"}, cli.ExitOK, "Tunnel:      connected to 10.0.0.2:443"},
		{"status DNS counts", []string{"--socket", sock, "status"}, cli.ExitOK, "DNS counts:  10 queries: 4 local, 5 forwarded (2 from the cache), 1 through publishers; 3 upstream errors, 1 SERVFAIL, 6 refused as too many in flight, 7 malformed, 8 upstream sockets closed early\n"},
		{"-f", []string{"--socket", sock, "-f"}, cli.ExitOK, "Tunnel status:: connected.\nClient status:: Enabled.\n"},
		{"-f onprem", []string{"--socket", sock, "-f"}, cli.ExitOK, "OnPremDetection:: Off (not configured)."},
		{"-f --json", []string{"--socket", sock, "--json", "-f"}, cli.ExitOK, `"key": "Email",` + "\n" + `    "value": "alice@demo.test"`},
		{"-n", []string{"--socket", sock, "-n"}, cli.ExitOK, "NPA status is Connected.\n"},
		{"-n --json", []string{"--socket", sock, "-n", "--json"}, cli.ExitOK, `"npa_status": "Connected"`},
		{"-x", []string{"-x", "^z", "zoom", "chrome"}, cli.ExitOK, "match\tzoom\nno-match\tchrome\n"},
		{"-x --json", []string{"--json", "-x", "^z", "zoom"}, cli.ExitOK, `"result": "match"`},
		{"-v", []string{"-v"}, cli.ExitOK, "ztdiag dev"},
		{"version --json", []string{"version", "--json"}, cli.ExitOK, `"version": "dev"`},
		{"-l not permitted", []string{"--socket", sock, "-l", "debug"}, cli.ExitNotPermitted, ""},
		{"-l", []string{"--socket", root, "-l", "debug", "-m", "3"}, cli.ExitOK, "Log level:: debug.\nLog file:: /l/ztagent.log, rotated at 3 MB, 5 kept.\n"},
		{"-m bad", []string{"--socket", sock, "-m", "-2"}, cli.ExitUsage, ""},
		{"-l -f", []string{"--socket", sock, "-l", "debug", "-f"}, cli.ExitUsage, ""},
		{"-t not permitted", []string{"--socket", sock, "-t", "disable", "--password", "x"}, cli.ExitNotPermitted, ""},
		{"-t bad", []string{"--socket", sock, "-t", "off"}, cli.ExitUsage, ""},
		{"-t help", []string{"-t", "disable", "--help"}, cli.ExitOK, "usage: ztdiag -t"},
		{"-p bad action", []string{"-p", "pause"}, cli.ExitUsage, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := exitStatus(run(context.Background(), tc.args, &out))
			if got := cli.Code(err); got != tc.code {
				t.Fatalf("ztdiag %q: exit status %d (%v), want %d", tc.args, got, err, tc.code)
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Fatalf("ztdiag %q printed %q, want %q in it", tc.args, out.String(), tc.out)
			}
		})
	}
}

// TestNotYetFlagsSaySo: each flag not done yet is refused by name, "not
// supported yet", never run as something else.
func TestNotYetFlagsSaySo(t *testing.T) {
	for _, f := range notYet {
		err := run(context.Background(), []string{"-" + f.name, "x"}, &bytes.Buffer{})
		if cli.Code(err) != cli.ExitFailure || !strings.Contains(err.Error(), "-"+f.name+" is not supported yet") {
			t.Errorf("-%s: %v", f.name, err)
		}
	}
}

func TestNPAState(t *testing.T) {
	cases := []struct {
		name string
		st   ctlapi.Status
		want string
	}{
		{"connected", connected, "Connected"},
		{"tunnel down", ctlapi.Status{State: ctlapi.StateRunning, Tunnel: ctlapi.TunnelStatus{State: "down"}}, "Disconnected"},
		{"connecting", ctlapi.Status{State: ctlapi.StateRunning, Tunnel: ctlapi.TunnelStatus{State: "connecting"}}, "Connecting"},
		{"suspended", ctlapi.Status{State: ctlapi.StateSuspended, Tunnel: ctlapi.TunnelStatus{State: "connected"}}, "Disabled (re-authentication overdue)"},
		{"starting", ctlapi.Status{State: ctlapi.StateStarting}, "Disconnected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := npaState(tc.st); got != tc.want {
				t.Fatalf("npaState = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBundleWritten: -o asks the agent for the bundle (anonymized with
// --anonymize) and writes it as a zip, 0600; refused to a non-administrator
// with exit status 4, and no file is left.
func TestBundleWritten(t *testing.T) {
	var asked ctlapi.BundleRequest
	root := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathBundle: func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&asked)
		json.NewEncoder(w).Encode(ctlapi.Bundle{Files: []ctlapi.BundleFile{
			{Name: "status.json", Data: "{}\n"}, {Name: "logs/ztagent.log", Data: "line\n"}}})
	}})
	file := filepath.Join(t.TempDir(), "diag.zip")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--socket", root, "-o", file, "--anonymize"}, &out); err != nil {
		t.Fatal(err)
	}
	if !asked.Anonymize || !strings.Contains(out.String(), "diagnostics bundle written: "+file+" (2 files") {
		t.Fatalf("asked %+v; printed %q", asked, out.String())
	}
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if strings.Join(names, " ") != "status.json logs/ztagent.log ztdiag.txt" {
		t.Fatalf("zip holds %q", names)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle mode %v", fi.Mode().Perm())
	}

	sock := fakeDaemon(t, connected, nil)
	other := filepath.Join(t.TempDir(), "no.zip")
	err = exitStatus(run(context.Background(), []string{"--socket", sock, "-o", other}, &out))
	if cli.Code(err) != cli.ExitNotPermitted {
		t.Fatalf("-o as a user: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(other)); len(entries) != 0 {
		t.Fatalf("a refused bundle left %d files", len(entries))
	}
	if err := run(context.Background(), []string{"--anonymize", "-f"}, &out); cli.Code(err) != cli.ExitUsage {
		t.Fatalf("--anonymize without -o: %v", err)
	}
}

func TestTamperHash(t *testing.T) {
	defer func(r io.Reader) { stdin = r }(stdin)
	stdin = strings.NewReader("open sesame\n")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"tamper-hash"}, &out); err != nil {
		t.Fatal(err)
	}
	h := strings.TrimSpace(out.String())
	if err := steering.CheckTamperPassword(h, "open sesame"); err != nil || strings.Contains(h, "sesame") {
		t.Fatalf("hash %q: %v", h, err)
	}
	stdin = strings.NewReader("short\n")
	if err := run(context.Background(), []string{"tamper-hash"}, &out); cli.Code(err) != cli.ExitUsage {
		t.Fatalf("short password: %v", err)
	}
}
