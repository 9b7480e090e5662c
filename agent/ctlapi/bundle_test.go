package ctlapi

import (
	"strings"
	"testing"
)

func TestAnonymizer(t *testing.T) {
	a := NewAnonymizer()
	a.Add("host", "alice-laptop")
	a.Add("user", "alice")
	a.Add("host", "web.corp.test")
	a.Add("host", "pc") // too short: would match inside words
	in := `2026-11-30T08:49:22.890Z	info	enrolled	{"user": "alice@secure.test", "host": "ALICE-LAPTOP", "login": "alice"}
flow steered {"dst": "100.64.0.2:80", "host": "web.corp.test", "src": "10.10.0.2:52778", "pop": "203.0.113.7:443"}
routes fd00::1/64 fe80::1%eth0 2001:db8::1 192.168.1.20 8.8.8.8 pc alice-laptop.`
	got := a.Text(in)
	for _, gone := range []string{"alice", "ALICE", "secure.test", "web.corp.test", "100.64.0.2", "10.10.0.2", "fd00::1", "fe80::1", "192.168.1.20"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q is still there:\n%s", gone, got)
		}
	}
	for _, kept := range []string{"2026-11-30T08:49:22.890Z", "203.0.113.7:443", "2001:db8::1", "8.8.8.8", ":80", " pc ", "user-1@host-", `"host": "host-1"`} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q is gone:\n%s", kept, got)
		}
	}
	// The same name gets the same token in every file.
	if again := a.Text("alice@secure.test 10.10.0.2"); !strings.Contains(got, again[:strings.Index(again, " ")]) {
		t.Errorf("tokens differ: %q", again)
	}
}

func TestBundleRedact(t *testing.T) {
	b := Bundle{Files: []BundleFile{{Name: "logs/ztagent.log", Data: "token=org-key-0123 and short=abc"}}}
	b.Redact([]string{"org-key-0123", "abc", ""})
	if got := b.Files[0].Data; got != "token=[redacted] and short=abc" {
		t.Fatalf("redacted: %q", got)
	}
}
