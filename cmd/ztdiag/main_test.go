package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/steering"
)

func TestParseTarget(t *testing.T) {
	cases := []struct {
		in      string
		want    ctlapi.MatchRequest
		wantErr bool
	}{
		{"web.corp.test", ctlapi.MatchRequest{Host: "web.corp.test", Proto: "tcp"}, false},
		{"web.corp.test:443", ctlapi.MatchRequest{Host: "web.corp.test", Port: 443, Proto: "tcp"}, false},
		{"10.0.0.1:53/udp", ctlapi.MatchRequest{Host: "10.0.0.1", Port: 53, Proto: "udp"}, false},
		{"[2001:db8::1]:22/TCP", ctlapi.MatchRequest{Host: "2001:db8::1", Port: 22, Proto: "tcp"}, false},
		{"2001:db8::1", ctlapi.MatchRequest{Host: "2001:db8::1", Proto: "tcp"}, false},
		{"host:0", ctlapi.MatchRequest{}, true},
		{"host:70000", ctlapi.MatchRequest{}, true},
		{"host:80/icmp", ctlapi.MatchRequest{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseTarget(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMatchOfflineWithTenantFile(t *testing.T) {
	var out bytes.Buffer
	args := []string{"match", "--config", "../../testdata/tenants/demo.yaml", "--user", "alice@demo.test", "--json", "web.corp.test:80"}
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"action": "l7"`) || !strings.Contains(out.String(), `"app": "web"`) {
		t.Fatalf("output:\n%s", out.String())
	}
	out.Reset()
	args[len(args)-1] = "web.corp.test:8080"
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"action": "direct"`) {
		t.Fatalf("port outside the app: %s", out.String())
	}
}

func TestRegexExitCodes(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"regex", `^(?!chrome$|msedge$).*$`, "chrome", "zoom"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "no-match\tchrome\nmatch\tzoom\n" {
		t.Fatalf("output %q", out.String())
	}
	err := run(context.Background(), []string{"regex", `(abc`, "x"}, &out)
	var ee *cli.Error
	if !errors.As(err, &ee) || ee.Code != 2 {
		t.Fatalf("invalid pattern: err %v, want exit status 2", err)
	}
}

// TestRegexTimeoutExitStatus: a subject whose match timed out is reported on
// its line and makes the exit status 3, after every subject is printed.
func TestRegexTimeoutExitStatus(t *testing.T) {
	var out bytes.Buffer
	slow := strings.Repeat("a", 40) + "!"
	err := run(context.Background(), []string{"regex", `^(a+)+$`, slow, "aaa"}, &out)
	var ee *cli.Error
	if !errors.As(err, &ee) || ee.Code != cli.ExitTimeout {
		t.Fatalf("timed-out match: err %v, want exit status %d", err, cli.ExitTimeout)
	}
	want := "timeout\t" + slow + "\t(pattern match timed out: the agent takes it as no match)\nmatch\taaa\n"
	if out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
}

func TestNoDaemon(t *testing.T) {
	err := run(context.Background(), []string{"--socket", t.TempDir() + "/none.sock", "status"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("err = %v, want 'not running'", err)
	}
}

// TestMatchRefusesWhatIsNotCarried: offline, against a steering config, a
// flow steered as UDP through the L7 tunnel is shown as refused, with the
// reason, not as steered; a config with an L3E app is refused whole.
func TestMatchRefusesWhatIsNotCarried(t *testing.T) {
	file := filepath.Join(t.TempDir(), "steering.json")
	cfg := `{"apps": [
		{"id": "voice", "hosts": ["voice.corp.test"], "tcp": "5061", "udp": "5060"}
	]}`
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		target, action, reason string
	}{
		{"voice.corp.test:5060/udp", "l7", ""},
		{"voice.corp.test:5061", "l7", ""},
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), []string{"match", "--config", file, "--json", tc.target}, &out); err != nil {
				t.Fatal(err)
			}
			var resp ctlapi.MatchResponse
			if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Action != tc.action || (tc.reason != "" && resp.Reason != tc.reason) {
				t.Fatalf("match %s = %+v, want %s (%s)", tc.target, resp, tc.action, tc.reason)
			}
			out.Reset()
			if err := run(context.Background(), []string{"match", "--config", file, tc.target}, &out); err != nil {
				t.Fatal(err)
			}
			if tc.action == ctlapi.ActionRefuse && !strings.HasPrefix(out.String(), "REFUSED") {
				t.Fatalf("text output: %q", out.String())
			}
		})
	}
}

func TestMatchRefusesL3EConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "steering.json")
	cfg := `{"apps": [{"id": "legacy", "hosts": ["10.50.0.0/24"], "tcp": "22", "tunnel": "l3e"}]}`
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"match", "--config", file, "10.50.0.7:22"}, &out)
	if err == nil || !strings.Contains(err.Error(), `apps[0].tunnel: "l3e": `+steering.ReasonL3ENotSupported) {
		t.Fatalf("match against an L3E config: %v, want the refusal", err)
	}
}

func TestPrintStatusShowsWhatIsNotInForce(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, ctlapi.Status{
		State: ctlapi.StateSuspended,
		Error: "re-authentication is overdue",
		Settings: []ctlapi.Setting{
			{Key: "upn", Value: "bob@test.example", Source: "mdm:/etc/ztagent/mdm.json", Pending: "applies at the next enrollment: run ztdiag -e to apply now"},
			{Key: "host", Value: "tenant.test", Source: "install"},
		},
		Apps: []ctlapi.AppStatus{{ID: "legacy", Hosts: []string{"10.50.0.0/24"}, TCP: "22", Tunnel: "l3e",
			NotCarried: "all flows: the L3E tunnel is not supported yet"}},
		Flows: ctlapi.FlowStatus{NotCarried: 3, SYNDropped: 2},
	})
	for _, want := range []string{
		"suspended", "private access is off until the user signs in again", "re-authentication is overdue",
		"PENDING: applies at the next enrollment", "NOT CARRIED, refused: all flows: the L3E tunnel is not supported yet",
		"3 not carried", "2 SYNs dropped",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPrintStatusShowsSelection(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, ctlapi.Status{
		State: ctlapi.StateRunning,
		Tunnel: ctlapi.TunnelStatus{State: "connected", PoP: "10.0.0.2:443", PoPs: []ctlapi.PoPStatus{
			{Addr: "10.0.0.1:443", Error: "connection refused"},
			{Addr: "10.0.0.2:443", Connect: 3 * time.Millisecond, InUse: true},
		}},
		Selection: ctlapi.SelectionStatus{Interval: "5m0s", ProbeFailures: 2},
		Apps: []ctlapi.AppStatus{{ID: "web", Hosts: []string{"web.corp.test"}, TCP: "80", Publishers: []ctlapi.PublisherStatus{
			{Name: "near", RTT: 1200 * time.Microsecond, Bucket: "<5ms", Selected: true},
			{Name: "far", RTT: 41 * time.Millisecond, Bucket: "20-50ms"},
			{Name: "gone", Error: "publisher gone is not online"},
		}}},
	})
	for _, want := range []string{
		"PoP 10.0.0.1:443  unreachable: connection refused", "PoP 10.0.0.2:443  connect 3.0ms  IN USE",
		"every 5m0s; 2 probes failed",
		"publisher near  rtt 1.2ms (bucket <5ms)  SELECTED", "publisher far   rtt 41.0ms (bucket 20-50ms)\n",
		"publisher gone  unreachable: publisher gone is not online",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}
