package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
)

// TestRequestTiming: -r asks the agent how it steers the URL's host and
// port, then times a GET of it; a failed request is exit status 1 with the
// phase it got to.
func TestRequestTiming(t *testing.T) {
	body := strings.Repeat("z", 100_000)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body))
	}))
	defer srv.Close()
	var asked ctlapi.MatchRequest
	sock := fakeDaemon(t, connected, map[string]http.HandlerFunc{"POST " + ctlapi.PathMatch: func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&asked)
		json.NewEncoder(w).Encode(ctlapi.MatchResponse{Action: "l7", App: "web"})
	}})
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	var out bytes.Buffer
	if err := run(context.Background(), []string{"--socket", sock, "-r", url, "--insecure"}, &out); err != nil {
		t.Fatal(err)
	}
	if asked.Host != "localhost" || asked.Port == 0 || asked.Proto != "tcp" {
		t.Fatalf("match asked %+v", asked)
	}
	for _, want := range []string{"Steering:: L7 tunnel (app web).", "Status:: 200 OK.", "Size:: 100000 bytes.", "TLS handshake:: ", "First byte:: ", "Speed:: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "TLS handshake:: -.") || strings.Contains(out.String(), "Connect:: -.") {
		t.Errorf("a phase was not measured:\n%s", out.String())
	}

	out.Reset()
	if err := run(context.Background(), []string{"--socket", sock, "--json", "-r", url, "--insecure"}, &out); err != nil {
		t.Fatal(err)
	}
	var rt map[string]any
	if err := json.Unmarshal(out.Bytes(), &rt); err != nil || rt["bytes"] != float64(100000) || rt["tls_ns"] == nil {
		t.Fatalf("JSON %v: %s", err, out.String())
	}

	// The certificate is verified unless --insecure.
	out.Reset()
	err := run(context.Background(), []string{"--socket", sock, "-r", url}, &out)
	if cli.Code(err) != cli.ExitFailure || !strings.Contains(out.String(), "Error:: ") {
		t.Fatalf("unverified certificate: %v\n%s", err, out.String())
	}
	for _, bad := range []string{"ftp://x/", "web.corp.test", "http:///x"} {
		if err := run(context.Background(), []string{"--socket", sock, "-r", bad}, &out); cli.Code(err) != cli.ExitUsage {
			t.Errorf("-r %s: %v", bad, err)
		}
	}
}
