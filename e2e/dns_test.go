//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// digOpts make every dig fail fast instead of retrying for 15 s.
var digOpts = []string{"+time=3", "+tries=1"}

// digFull runs dig in the client namespace and returns its full output.
func digFull(t *testing.T, l *lab, args ...string) string {
	t.Helper()
	return l.must("client", append(append([]string{"dig"}, digOpts...), args...)...)
}

var (
	digStatus  = regexp.MustCompile(`status: ([A-Z]+)`)
	digAnswers = regexp.MustCompile(`ANSWER: (\d+)`)
	digEDNS    = regexp.MustCompile(`; EDNS: version: 0, flags:([^;]*);`)
)

// digResult is the part of a dig answer that must not depend on the path the
// query took: status, answer count and records without TTLs.
func digResult(t *testing.T, out string) (status string, answers int, records []string) {
	t.Helper()
	status, answers, records = digResultQuiet(out)
	if status == noAnswer {
		t.Fatalf("not a dig answer:\n%s", out)
	}
	return status, answers, records
}

// TestDNS checks the DNS rules of issue 5 with real dig in one lab: the
// agent's answers for private names, public names resolving exactly as they
// do without it, EDNS0 and TCP, malformed queries; then that a clean stop and
// a kill -9 followed by a restart both leave resolv.conf byte-identical, and
// that a rewrite by another program is followed.
func TestDNS(t *testing.T) {
	requireE2E(t)
	l := newLab(t)
	resolvPath := filepath.Join("/etc/netns", l.ns("client"), "resolv.conf")
	original, err := os.ReadFile(resolvPath)
	if err != nil {
		t.Fatal(err)
	}
	l.script("agent-start")
	running := true
	t.Cleanup(func() {
		if running {
			l.script("agent-stop")
		}
	})
	stubs := netip.MustParsePrefix("100.64.0.0/10")
	stubs6 := netip.MustParsePrefix("fd7a:7a61:6774::/104")

	t.Run("A of a private name is its stub, with a short TTL", func(t *testing.T) {
		out := digFull(t, l, "web.corp.test", "A")
		status, n, recs := digResult(t, out)
		if status != "NOERROR" || n != 1 {
			t.Fatalf("status %s, %d answers:\n%s", status, n, out)
		}
		f := strings.Fields(recs[0])
		if a, err := netip.ParseAddr(f[len(f)-1]); err != nil || !stubs.Contains(a) {
			t.Fatalf("answer %q is not a stub address", recs[0])
		}
		ttl := strings.Fields(strings.TrimSpace(l.must("client", "dig", "+noall", "+answer", "web.corp.test")))[1]
		if v, err := strconv.Atoi(ttl); err != nil || v <= 0 || v > 300 {
			t.Errorf("TTL %s, want a short one (1..300 s)", ttl)
		}
	})

	t.Run("AAAA of a private name is its IPv6 stub", func(t *testing.T) {
		out := digFull(t, l, "web.corp.test", "AAAA")
		status, n, recs := digResult(t, out)
		if status != "NOERROR" || n != 1 {
			t.Fatalf("status %s, %d answers:\n%s", status, n, out)
		}
		f := strings.Fields(recs[0])
		if a, err := netip.ParseAddr(f[len(f)-1]); err != nil || !stubs6.Contains(a) {
			t.Fatalf("answer %q is not in the IPv6 stub range %s", recs[0], stubs6)
		}
	})

	t.Run("other types of a private name: NOERROR, no answer", func(t *testing.T) {
		for _, typ := range []string{"HTTPS", "SVCB", "MX", "TXT"} {
			out := digFull(t, l, "web.corp.test", typ)
			if status, n, _ := digResult(t, out); status != "NOERROR" || n != 0 {
				t.Errorf("%s: status %s, %d answers; want NOERROR and none:\n%s", typ, status, n, out)
			}
		}
	})

	t.Run("PTR of a stub address is the name", func(t *testing.T) {
		addr := dig(t, l, "a.apps.corp.test")
		out := strings.TrimSpace(l.must("client", append([]string{"dig", "+short"}, append(digOpts, "-x", addr.String())...)...))
		if out != "a.apps.corp.test." {
			t.Errorf("dig -x %s = %q, want a.apps.corp.test.", addr, out)
		}
	})

	t.Run("public names resolve as they do without the agent", func(t *testing.T) {
		for _, q := range [][]string{
			{"www.public.test", "A"}, {"www.public.test", "AAAA"}, {"www.public.test", "TXT"},
			{"public.test", "MX"}, {"nosuch.invalid", "A"}, {"www.public.test", "A", "+tcp"},
		} {
			via := digFull(t, l, q...)
			direct := digFull(t, l, append(q, "@10.10.0.1")...)
			vs, vn, vr := digResult(t, via)
			ds, dn, dr := digResult(t, direct)
			if vs != ds || vn != dn || strings.Join(vr, "\n") != strings.Join(dr, "\n") {
				t.Errorf("%v through the agent: %s %d %q; directly: %s %d %q", q, vs, vn, vr, ds, dn, dr)
			}
		}
	})

	t.Run("EDNS0 and the DO bit survive forwarding", func(t *testing.T) {
		via := digFull(t, l, "+dnssec", "www.public.test", "A")
		direct := digFull(t, l, "+dnssec", "www.public.test", "A", "@10.10.0.1")
		v, d := digEDNS.FindStringSubmatch(via), digEDNS.FindStringSubmatch(direct)
		if v == nil || d == nil {
			t.Fatalf("no OPT record: through the agent:\n%s\ndirectly:\n%s", via, direct)
		}
		if !strings.Contains(v[1], "do") || strings.TrimSpace(v[1]) != strings.TrimSpace(d[1]) {
			t.Errorf("EDNS flags through the agent %q, directly %q; want do in both", v[1], d[1])
		}
	})

	t.Run("TCP", func(t *testing.T) {
		out := digFull(t, l, "+tcp", "web.corp.test", "A")
		if status, n, _ := digResult(t, out); status != "NOERROR" || n != 1 {
			t.Errorf("dig +tcp web.corp.test: %s, %d answers:\n%s", status, n, out)
		}
	})

	t.Run("malformed queries get FORMERR and the proxy keeps serving", func(t *testing.T) {
		// No question at all.
		out := digFull(t, l, "+header-only", "web.corp.test")
		if status, _, _ := digResult(t, out); status != "FORMERR" {
			t.Errorf("header-only query: status %s, want FORMERR:\n%s", status, out)
		}
		// A question cut short: 12-byte header claiming one question, then
		// half a name. miekg/dns answers FORMERR with the query's ID.
		raw := `import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(bytes.fromhex("beef01000001000000000000037765"),(sys.argv[1],53))
r=s.recv(512); print(r[:2].hex(), r[3]&15)`
		server := resolvServer(t, resolvPath)
		got := strings.TrimSpace(l.must("client", "python3", "-c", raw, server))
		if got != "beef 1" {
			t.Errorf("truncated question: reply id/rcode %q, want \"beef 1\" (FORMERR)", got)
		}
		dig(t, l, "web.corp.test") // still answering
	})

	t.Run("clean stop leaves resolv.conf byte-identical", func(t *testing.T) {
		l.script("agent-stop")
		running = false
		if got, _ := os.ReadFile(resolvPath); string(got) != string(original) {
			t.Fatalf("resolv.conf after stop:\n%q\nwant:\n%q", got, original)
		}
	})

	t.Run("kill -9, then a restart repairs resolv.conf", func(t *testing.T) {
		l.script("agent-start")
		running = true
		during, _ := os.ReadFile(resolvPath)
		if !strings.HasPrefix(string(during), "# Generated by ztagent") {
			t.Fatalf("resolv.conf while the agent runs:\n%s", during)
		}
		killAgent(t, l)
		if after, _ := os.ReadFile(resolvPath); string(after) != string(during) {
			t.Fatalf("resolv.conf changed by kill -9 (nothing can run then):\n%s", after)
		}
		l.script("agent-start")
		dig(t, l, "web.corp.test")
		l.script("agent-stop")
		running = false
		if got, _ := os.ReadFile(resolvPath); string(got) != string(original) {
			t.Fatalf("resolv.conf after kill -9, restart and stop:\n%q\nwant:\n%q", got, original)
		}
	})

	t.Run("a resolv.conf rewritten by dhclient is taken back, and is what stop restores", func(t *testing.T) {
		l.script("agent-start")
		running = true
		// In place, as the agent's namespace sees the file through a bind mount.
		theirs := "# rewritten by dhclient at a lease renewal\nnameserver 10.10.0.1\n"
		if err := os.WriteFile(resolvPath, []byte(theirs), 0o644); err != nil {
			t.Fatal(err)
		}
		for range 200 { // inotify tells the agent at once; wait up to 10 s
			if b, _ := os.ReadFile(resolvPath); strings.HasPrefix(string(b), "# Generated by ztagent") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if b, _ := os.ReadFile(resolvPath); !strings.HasPrefix(string(b), "# Generated by ztagent") {
			t.Fatalf("resolv.conf not taken back:\n%s", b)
		}
		if addr := dig(t, l, "web.corp.test"); !stubs.Contains(addr) {
			t.Fatalf("web.corp.test = %s after the rewrite, want a stub", addr)
		}
		l.script("agent-stop")
		running = false
		if got, _ := os.ReadFile(resolvPath); string(got) != theirs {
			t.Fatalf("resolv.conf after stop:\n%q\nwant dhclient's newer file:\n%q", got, theirs)
		}
	})
}

// resolvServer is the first nameserver in the resolv.conf at path: the
// agent's address while it runs.
func resolvServer(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
			return f[1]
		}
	}
	t.Fatalf("no nameserver in %s:\n%s", path, b)
	return ""
}

// killAgent sends SIGKILL to the agent the lab started and waits for it to
// be gone.
func killAgent(t *testing.T, l *lab) {
	t.Helper()
	pid := agentPID(t, l)
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "ztagent" {
		t.Fatalf("pid %d is %q, not ztagent", pid, comm)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		// Gone, or a zombie nobody has reaped yet whose other threads have
		// exited too (only then are its sockets closed): dead either way.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if f := strings.Fields(string(stat)); err != nil || len(f) > 2 && f[2] == "Z" && len(tasks) <= 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("agent %d still alive after SIGKILL", pid)
}
