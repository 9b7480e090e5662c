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
)

// TestCaptureFlags: -c start sends the file (made absolute: the agent runs
// elsewhere) and the snapshot length; -c stop sends neither; misuse is exit
// status 2.
func TestCaptureFlags(t *testing.T) {
	var asked []ctlapi.CaptureRequest
	sock := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathCapture: func(w http.ResponseWriter, r *http.Request) {
		var req ctlapi.CaptureRequest
		json.NewDecoder(r.Body).Decode(&req)
		asked = append(asked, req)
		json.NewEncoder(w).Encode(ctlapi.CaptureStatus{Running: req.Action == "start", File: req.File, Snaplen: 96,
			MaxBytes: 100 << 20, Started: time.Now(), Ending: "stopped", Packets: 3, Bytes: 400})
	}})
	wd, _ := os.Getwd()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--socket", sock, "-c", "start", "-o", "t.pcap", "-s", "96"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"--socket", sock, "-c", "stop"}, &out); err != nil {
		t.Fatal(err)
	}
	want := []ctlapi.CaptureRequest{{Action: "start", File: filepath.Join(wd, "t.pcap"), Snaplen: 96}, {Action: "stop"}}
	if len(asked) != 2 || asked[0] != want[0] || asked[1] != want[1] {
		t.Fatalf("asked %+v, want %+v", asked, want)
	}
	if s := out.String(); !strings.Contains(s, "Capture:: Running since") || !strings.Contains(s, "Capture:: Ended (stopped)") {
		t.Fatalf("printed %q", s)
	}
	for _, args := range [][]string{
		{"-c", "pause"}, {"-s", "96", "-f"}, {"-c", "stop", "-o", "x.pcap"}, {"-c", "start", "-s", "-1"},
		{"-c", "start", "--anonymize"}, {"-c", "start", "-f"},
	} {
		if err := run(context.Background(), append([]string{"--socket", sock}, args...), &out); cli.Code(err) != cli.ExitUsage {
			t.Errorf("ztdiag %q: %v, want exit status 2", args, err)
		}
	}
	user := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathCapture: func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(ctlapi.ErrorResponse{Error: "this command needs root or administrator rights"})
	}})
	if err := exitStatus(run(context.Background(), []string{"--socket", user, "-c", "stop"}, &out)); cli.Code(err) != cli.ExitNotPermitted {
		t.Fatalf("-c as a user: %v", err)
	}
}
