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

// captureAgent is the agent's capture endpoint: it records each request in
// asked and answers st, running after a start, with the file asked, a 100 MB
// cap, 3 packets and 400 bytes.
func captureAgent(asked *[]ctlapi.CaptureRequest, st ctlapi.CaptureStatus) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req ctlapi.CaptureRequest
		json.NewDecoder(r.Body).Decode(&req)
		*asked = append(*asked, req)
		st.Running, st.File = req.Action == "start", req.File
		st.MaxBytes, st.Started, st.Ending, st.Packets, st.Bytes = 100<<20, time.Now(), "stopped", 3, 400
		json.NewEncoder(w).Encode(st)
	}
}

// TestCaptureFlags: -c start sends the file (made absolute: the agent runs
// elsewhere) and the snapshot length; -c stop sends neither; misuse is exit
// status 2.
func TestCaptureFlags(t *testing.T) {
	var asked []ctlapi.CaptureRequest
	sock := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathCapture: captureAgent(&asked, ctlapi.CaptureStatus{Snaplen: 96})})
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

// TestSpeedFlags: -g sends the direction, the size and the app, and prints
// the rate; misuse is exit status 2.
func TestSpeedFlags(t *testing.T) {
	var asked ctlapi.SpeedRequest
	sock := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathSpeed: func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&asked)
		json.NewEncoder(w).Encode(ctlapi.SpeedResult{Direction: asked.Direction, App: "web", Publisher: "pub-1", PoP: "10.0.0.2:443",
			Bytes: asked.Bytes, Duration: time.Second, Mbps: float64(asked.Bytes) * 8 / 1e6})
	}})
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--socket", sock, "-g", "download", "-s", "2M", "--app", "web"}, &out); err != nil {
		t.Fatal(err)
	}
	if asked != (ctlapi.SpeedRequest{Direction: "download", Bytes: 2 << 20, App: "web"}) || !strings.Contains(out.String(), "Speed Test:: download 2097152 bytes in 1.000 s: 16.8 Mbit/s") {
		t.Fatalf("asked %+v; printed %q", asked, out.String())
	}
	if err := run(context.Background(), []string{"--socket", sock, "-g", "upload"}, &out); err != nil || asked.Bytes != defaultSpeedBytes {
		t.Fatalf("-g upload: %v, asked %+v", err, asked)
	}
	for _, args := range [][]string{
		{"-g", "sideways"}, {"-g", "upload", "-s", "2T"}, {"-g", "upload", "-s", "0"}, {"-g", "upload", "-s", "2G"},
		{"-s", "10M", "-f"}, {"--app", "web", "-f"}, {"-c", "start", "-s", "10M"},
	} {
		if err := run(context.Background(), append([]string{"--socket", sock}, args...), &out); cli.Code(err) != cli.ExitUsage {
			t.Errorf("ztdiag %q: %v, want exit status 2", args, err)
		}
	}
}

// TestUplinkCaptureFlags: -p start and stop go to the uplink capture, not
// the TUN's, with -o and -s as -c's; the status line names the interface;
// -c with -p, and misuse, are exit status 2; an agent on an OS without the
// capture is exit status 1 with its reason.
func TestUplinkCaptureFlags(t *testing.T) {
	var asked []ctlapi.CaptureRequest
	sock := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathUplinkCapture: captureAgent(&asked, ctlapi.CaptureStatus{Interface: "any", Snaplen: 128})})
	wd, _ := os.Getwd()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--socket", sock, "-p", "start", "-o", "u.pcap", "-s", "128"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"--socket", sock, "--json", "-p", "stop"}, &out); err != nil {
		t.Fatal(err)
	}
	want := []ctlapi.CaptureRequest{{Action: "start", File: filepath.Join(wd, "u.pcap"), Snaplen: 128}, {Action: "stop"}}
	if len(asked) != 2 || asked[0] != want[0] || asked[1] != want[1] {
		t.Fatalf("asked %+v, want %+v", asked, want)
	}
	if s := out.String(); !strings.Contains(s, "Uplink Capture:: Running since") || !strings.Contains(s, "(snaplen 128, cap 100 MB; on any; 3 packets") ||
		!strings.Contains(s, `"interface": "any"`) {
		t.Fatalf("printed %q", s)
	}
	for _, args := range [][]string{
		{"-p", "pause"}, {"-p", "stop", "-s", "96"}, {"-p", "start", "-c", "start"}, {"-p", "start", "--anonymize"}, {"-p", "start", "x"},
	} {
		if err := run(context.Background(), append([]string{"--socket", sock}, args...), &out); cli.Code(err) != cli.ExitUsage {
			t.Errorf("ztdiag %q: %v, want exit status 2", args, err)
		}
	}
	other := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathUplinkCapture: func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotImplemented)
		json.NewEncoder(w).Encode(ctlapi.ErrorResponse{Error: "uplink capture is not supported on this OS"})
	}})
	err := exitStatus(run(context.Background(), []string{"--socket", other, "-p", "start"}, &out))
	if cli.Code(err) != cli.ExitFailure || !strings.Contains(err.Error(), "not supported on this OS") {
		t.Fatalf("-p on an OS without it: %v", err)
	}
}
