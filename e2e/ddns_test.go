//go:build linux

package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/dnsproxy/ddns"
)

// The lab's TSIG key for corp-dns (scripts/lab.sh).
const (
	ddnsKeyName = "ztagent-ddns."
	ddnsSecret  = "dNtRwXD+n6KEQ8egiN9ytSBpETkvZc41RdcYLo2Qx8M="
)

// TestDDNS registers a name with the lab's BIND9 (corp-dns, 10.20.0.12) with
// dnsproxy/ddns and reads it back with dig. The client namespace reaches
// 10.20.0.12 only through an L3E tunnel, so the registrations run in the
// corporate namespace: this test binary again, as ddnsHelper.
func TestDDNS(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	secretFile := func(name, secret string) string {
		f := filepath.Join(l.dir, "secrets", name)
		if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	good := secretFile("ddns.key", ddnsSecret)
	wrong := secretFile("ddns-wrong.key", "c2VjcmV0LW9mLWFub3RoZXIta2V5LTEyMzQ1Njc4OTA=")
	// ddns runs one operation in the corporate namespace and returns its
	// result: "<nil>" or the error.
	ddnsOp := func(op, name, owner, key, secret string, addrs ...string) string {
		t.Helper()
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		out := l.must("corp", append([]string{exe, "-test.run", "^TestDDNSHelper$", "--", "ddns-helper",
			op, name, owner, key, secret}, addrs...)...)
		_, res, ok := strings.Cut(out, "ddns-result: ")
		if !ok {
			t.Fatalf("ddns %s %s: no result:\n%s", op, name, out)
		}
		res, _, _ = strings.Cut(res, "\n")
		t.Logf("ddns %s %s as %s: %s", op, name, owner, res)
		return res
	}
	dig := func(server, name, typ string) string {
		t.Helper()
		return strings.TrimSpace(l.must("corp", "dig", "+short", "+time=3", "+tries=1", "@"+server, name, typ))
	}
	const name = "laptop1.corp.test"
	wantAddr := func(want string) {
		t.Helper()
		for _, server := range []string{"10.20.0.12", "10.20.0.10"} { // named, and dnsmasq forwarding to it
			if got := dig(server, name, "A"); got != want {
				t.Fatalf("dig @%s %s: %q, want %q", server, name, got, want)
			}
		}
	}

	// Before: the zone's wildcard answers for the name, which does not
	// count as "in use" for the registration's prerequisite.
	wantAddr("10.20.0.10")
	if r := ddnsOp("register", name, "laptop-1", ddnsKeyName, good, "100.96.0.5"); r != "<nil>" {
		t.Fatalf("register: %s", r)
	}
	wantAddr("100.96.0.5")
	if got := dig("10.20.0.12", name, "TXT"); got != `"ztagent-owner=laptop-1"` {
		t.Fatalf("owner record %q", got)
	}

	// Refresh, with a new address: the set is replaced.
	if r := ddnsOp("register", name, "laptop-1", ddnsKeyName, good, "100.96.0.6"); r != "<nil>" {
		t.Fatalf("refresh: %s", r)
	}
	wantAddr("100.96.0.6")

	// Another device, and a static name, are refused with the rcode; the
	// other device's remove leaves the name alone.
	for _, n := range []string{name, "pdns.corp.test"} {
		r := ddnsOp("register", n, "laptop-2", ddnsKeyName, good, "100.96.0.9")
		if !strings.Contains(r, "name held by another owner") || !strings.Contains(r, "NXRRSET") {
			t.Fatalf("register %s as another device: %s", n, r)
		}
	}
	if r := ddnsOp("remove", name, "laptop-2", ddnsKeyName, good); r != "<nil>" {
		t.Fatalf("remove as another device: %s", r)
	}
	wantAddr("100.96.0.6")

	// Wrong secret and unknown key: NOTAUTH with the TSIG error.
	for _, tc := range []struct{ key, secret, want string }{
		{ddnsKeyName, wrong, "server answered NOTAUTH (TSIG BADSIG)"},
		{"other-key.", good, "server answered NOTAUTH (TSIG BADKEY)"},
	} {
		if r := ddnsOp("register", name, "laptop-1", tc.key, tc.secret, "100.96.0.7"); !strings.Contains(r, tc.want) {
			t.Fatalf("register with key %s, secret %s: %s; want %q", tc.key, filepath.Base(tc.secret), r, tc.want)
		}
	}
	wantAddr("100.96.0.6")

	// Remove: the wildcard answers again, and the owner record is gone.
	if r := ddnsOp("remove", name, "laptop-1", ddnsKeyName, good); r != "<nil>" {
		t.Fatalf("remove: %s", r)
	}
	wantAddr("10.20.0.10")
	if got := dig("10.20.0.12", name, "TXT"); got != "" {
		t.Fatalf("owner record after remove: %q", got)
	}

	// Run: registers, and removes when stopped.
	exe, _ := os.Executable()
	run := l.background("ddns-run", "corp", exe, "-test.run", "^TestDDNSHelper$", "--", "ddns-helper",
		"run", name, "laptop-1", ddnsKeyName, good, "100.96.0.8")
	deadline := time.Now().Add(5 * time.Second)
	for dig("10.20.0.12", name, "A") != "100.96.0.8" {
		if time.Now().After(deadline) {
			t.Fatal("Run did not register within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopProcess(t, run)
	if log, _ := os.ReadFile(filepath.Join(l.dir, "ddns-run.log")); !strings.Contains(string(log), "ddns-result: <nil>") {
		t.Fatalf("Run's end:\n%s", log)
	}
	wantAddr("10.20.0.10")
}

// TestDDNSHelper is TestDDNS's hand in the corporate namespace: it runs when
// the test binary is started with "-- ddns-helper OP NAME OWNER KEYNAME
// SECRETFILE [ADDR...]" and prints "ddns-result: " and the outcome.
func TestDDNSHelper(t *testing.T) {
	args := flag.Args()
	if len(args) < 6 || args[0] != "ddns-helper" {
		t.Skip("run by TestDDNS")
	}
	op, name, owner, key, secretFile := args[1], args[2], args[3], args[4], args[5]
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, a := range args[6:] {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	log, _ := zap.NewDevelopment()
	c, err := ddns.New(ddns.Config{Server: "10.20.0.12:53", Zone: "corp.test", Name: name, KeyName: key,
		Secret: ddns.Secret(strings.TrimSpace(string(secret))), Owner: owner, Refresh: time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	switch op {
	case "register":
		err = c.Register(ctx, addrs)
	case "remove":
		err = c.Remove(ctx)
	case "run":
		err = c.Run(ctx, addrs)
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	fmt.Printf("ddns-result: %v\n", err)
}
