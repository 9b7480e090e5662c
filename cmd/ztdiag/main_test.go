package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/agent/ctlapi"
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
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("invalid pattern: err %v, want exit status 2", err)
	}
}

func TestNoDaemon(t *testing.T) {
	err := run(context.Background(), []string{"--socket", t.TempDir() + "/none.sock", "status"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("err = %v, want 'not running'", err)
	}
}
