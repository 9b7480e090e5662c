package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/steering"
)

// TestOverrideCodeFlow: tamper-key writes a private key and prints the
// config value; tamper-code issues a code that -t disable --code sends.
func TestOverrideCodeFlow(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "override.key")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"tamper-key", "-o", keyFile}, &out); err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(out.String())
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 || !strings.HasPrefix(pub, "ed25519:") {
		t.Fatalf("key file %v (%v), printed %q", fi, err, pub)
	}
	out.Reset()
	if err := run(context.Background(), []string{"tamper-code", "--key", keyFile, "--device", "dev-1", "--for", "4h"}, &out); err != nil {
		t.Fatal(err)
	}
	code := strings.TrimSpace(out.String())
	exp, err := steering.CheckTamperOverride(pub, code, "dev-1", time.Now())
	if err != nil || time.Until(exp) < 3*time.Hour {
		t.Fatalf("code %q: expires %v, %v", code, exp, err)
	}
	for _, args := range [][]string{
		{"tamper-code", "--key", keyFile, "--device", "dev-1", "--for", "200h"},
		{"tamper-code", "--key", keyFile, "--device", "dev-1"},
		{"tamper-key"},
		{"-t", "disable", "--code", code, "--password", "x"},
	} {
		if err := run(context.Background(), args, &out); cli.Code(err) != cli.ExitUsage {
			t.Errorf("ztdiag %q: %v, want exit status 2", args, err)
		}
	}
	var asked ctlapi.SteeringRequest
	sock := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathSteering: func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&asked)
		json.NewEncoder(w).Encode(ctlapi.SteeringStatus{Until: exp, Codes: true, Rule: "a code"})
	}})
	codeFile := filepath.Join(dir, "code")
	os.WriteFile(codeFile, []byte(code+"\n"), 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"--socket", sock, "-t", "disable", "--code", "@" + codeFile}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(asked.Code) != code || asked.On || !strings.Contains(out.String(), "Steering:: off until ") {
		t.Fatalf("asked %+v; printed %q", asked, out.String())
	}
}
