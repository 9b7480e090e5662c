package platform

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"go.uber.org/zap/zaptest"
)

var agentV4 = []netip.Addr{netip.MustParseAddr("100.64.0.53")}

func TestCompileOSDNS(t *testing.T) {
	const header = "# ztagent: written by the ztagent agent, removed when it stops.\n"
	tests := []struct {
		name    string
		goos    string
		cfg     DNSConfig
		files   map[string]string // darwin: name -> content
		rules   []nrptRule
		wantErr error
	}{
		{name: "darwin domains", goos: "darwin",
			cfg: DNSConfig{Servers: agentV4, Domains: []string{"Corp.Example.", "~apps.example", "corp.example"}},
			files: map[string]string{
				"corp.example": header + "nameserver 100.64.0.53\nsearch_order 1\n",
				"apps.example": header + "nameserver 100.64.0.53\nsearch_order 1\n",
			}},
		{name: "darwin two servers", goos: "darwin",
			cfg:   DNSConfig{Servers: []netip.Addr{agentV4[0], netip.MustParseAddr("fd7a::53")}, Domains: []string{"corp.example"}},
			files: map[string]string{"corp.example": header + "nameserver 100.64.0.53\nnameserver fd7a::53\nsearch_order 1\n"}},
		{name: "darwin every name", goos: "darwin", cfg: DNSConfig{Servers: agentV4}, wantErr: ErrDomainsRequired},
		{name: "darwin root domain", goos: "darwin", cfg: DNSConfig{Servers: agentV4, Domains: []string{"~."}}, wantErr: ErrDomainsRequired},
		{name: "darwin bad domain", goos: "darwin", cfg: DNSConfig{Servers: agentV4, Domains: []string{"../etc"}}, wantErr: errAny},
		{name: "no servers", goos: "windows", cfg: DNSConfig{Domains: []string{"corp.example"}}, wantErr: errAny},
		{name: "windows domains", goos: "windows",
			cfg: DNSConfig{Servers: []netip.Addr{agentV4[0], netip.MustParseAddr("fd7a::53")}, Domains: []string{"corp.example", "apps.example"}},
			rules: []nrptRule{
				{Key: "ztagent-.corp.example", Name: ".corp.example", GenericDNSServers: "100.64.0.53;fd7a::53", ConfigOptions: 8, Version: 2},
				{Key: "ztagent-.apps.example", Name: ".apps.example", GenericDNSServers: "100.64.0.53;fd7a::53", ConfigOptions: 8, Version: 2},
			}},
		{name: "windows every name", goos: "windows", cfg: DNSConfig{Servers: agentV4},
			rules: []nrptRule{{Key: "ztagent-.", Name: ".", GenericDNSServers: "100.64.0.53", ConfigOptions: 8, Version: 2}}},
		{name: "linux has no plan", goos: "linux", cfg: DNSConfig{Servers: agentV4}, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := compileOSDNS(tt.goos, tt.cfg)
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr != errAny && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range plan.ResolverFiles {
				got[f.Name] = string(f.Content)
			}
			if len(got) != len(tt.files) || len(plan.ResolverFiles) != len(tt.files) {
				t.Errorf("files %q, want %q", got, tt.files)
			}
			for name, want := range tt.files {
				if got[name] != want {
					t.Errorf("file %s = %q, want %q", name, got[name], want)
				}
			}
			if !slices.Equal(plan.NRPTRules, tt.rules) {
				t.Errorf("rules %+v, want %+v", plan.NRPTRules, tt.rules)
			}
			for _, r := range plan.NRPTRules {
				if !isNRPTKeyOurs(r.Key) {
					t.Errorf("rule key %s lacks the agent's prefix", r.Key)
				}
			}
		})
	}
}

var errAny = errors.New("any error")

// scutilSample follows the documented output of `scutil --dns` on macOS 14:
// a Wi-Fi default resolver, mDNS and reverse-lookup supplemental resolvers,
// a per-domain resolver from /etc/resolver, and the scoped section.
const scutilSample = `DNS configuration

resolver #1
  search domain[0] : home.example
  nameserver[0] : 192.168.1.1
  nameserver[1] : fe80::1%en0
  if_index : 6 (en0)
  flags    : Request A records, Request AAAA records
  reach    : 0x00020002 (Reachable,Directly Reachable Address)

resolver #2
  domain   : local
  options  : mdns
  timeout  : 5
  flags    : Request A records, Request AAAA records
  reach    : 0x00000000 (Not Reachable)
  order    : 300000

resolver #3
  domain   : corp.example
  nameserver[0] : 100.64.0.53
  flags    : Request A records, Request AAAA records
  reach    : 0x00000003 (Reachable,Transient Connection)
  order    : 1

resolver #4
  nameserver[0] : 9.9.9.9
  port     : 5353
  nameserver[1] : 192.168.1.1
  flags    : Request A records
  reach    : 0x00000002 (Reachable)

DNS configuration (for scoped queries)

resolver #1
  search domain[0] : home.example
  nameserver[0] : 10.0.0.1
  if_index : 6 (en0)
  flags    : Scoped, Request A records
  reach    : 0x00020002 (Reachable,Directly Reachable Address)
`

func TestParseScutilDNS(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"sample", scutilSample, []string{"192.168.1.1:53", "[fe80::1%en0]:53", "9.9.9.9:5353", "192.168.1.1:5353"}},
		{"empty", "", nil},
		{"no resolvers", "DNS configuration\n\nNo DNS configuration available\n", nil},
		{"scoped only", "DNS configuration (for scoped queries)\n\nresolver #1\n  nameserver[0] : 10.0.0.1\n", nil},
		{"garbage lines", "DNS configuration\nresolver #1\n  nameserver[0] : not-an-ip\n  port : 99999\n  nameserver[1] : 10.1.1.1\n::::\n", []string{"10.1.1.1:53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range parseScutilDNS([]byte(tt.in)) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseScutilDNS(f *testing.F) {
	f.Add([]byte(scutilSample))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, a := range parseScutilDNS(b) {
			if !a.IsValid() || a.Port() == 0 {
				t.Fatalf("invalid upstream %v", a)
			}
		}
	})
}

// The macOS configurator's files, journal and repair, on a temp directory.
func TestResolverDirSetRestore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "resolver")
	state := t.TempDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := "nameserver 10.9.9.9\n" // another VPN's file for a domain the agent routes too
	writeFileT(t, filepath.Join(dir, "apps.example"), theirs, 0o644)
	writeFileT(t, filepath.Join(dir, "other.example"), "nameserver 10.8.8.8\n", 0o644)
	scutil := func() ([]byte, error) { return []byte(scutilSample), nil }
	log := zaptest.NewLogger(t)
	r, err := newResolverDirDNS(dir, state, log, scutil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DNSConfig{Servers: agentV4, Domains: []string{"corp.example", "apps.example"}}
	if err := r.Set(cfg); err != nil {
		t.Fatal(err)
	}
	wantDir(t, dir, map[string]bool{"corp.example": true, "apps.example": true, "other.example": false})
	if up, _ := r.Upstreams(); len(up) != 4 {
		t.Errorf("Upstreams = %v", up)
	}
	// Fewer domains: apps.example gets the other VPN's file back.
	if err := r.Set(DNSConfig{Servers: agentV4, Domains: []string{"corp.example"}}); err != nil {
		t.Fatal(err)
	}
	wantDir(t, dir, map[string]bool{"corp.example": true, "apps.example": false, "other.example": false})
	if b, _ := os.ReadFile(filepath.Join(dir, "apps.example")); string(b) != theirs {
		t.Errorf("apps.example = %q, want the original back", b)
	}
	if err := r.Set(cfg); err != nil {
		t.Fatal(err)
	}
	// Crash: a new configurator repairs from the journal.
	if _, err := newResolverDirDNS(dir, state, log, scutil); err != nil {
		t.Fatal(err)
	}
	wantDir(t, dir, map[string]bool{"apps.example": false, "other.example": false})
	if b, _ := os.ReadFile(filepath.Join(dir, "apps.example")); string(b) != theirs {
		t.Errorf("apps.example after repair = %q, want the original", b)
	}
	if _, err := os.Stat(filepath.Join(state, resolverJournalName)); !os.IsNotExist(err) {
		t.Errorf("journal after repair: %v", err)
	}

	// A clean Set and Restore; then a file of ours with no journal (state
	// directory lost) is removed at the next start.
	r, _ = newResolverDirDNS(dir, state, log, scutil)
	if err := r.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	wantDir(t, dir, map[string]bool{"apps.example": false, "other.example": false})
	if err := r.Set(DNSConfig{Servers: agentV4}); !errors.Is(err, ErrDomainsRequired) {
		t.Errorf("Set without domains: %v, want ErrDomainsRequired", err)
	}
	writeFileT(t, filepath.Join(dir, "lost.example"), "# ztagent: written by the ztagent agent\nnameserver 100.64.0.53\n", 0o644)
	if _, err := newResolverDirDNS(dir, t.TempDir(), log, scutil); err != nil {
		t.Fatal(err)
	}
	wantDir(t, dir, map[string]bool{"apps.example": false, "other.example": false})
}

// A failed read of another program's file (out of descriptors, say) must not
// be taken as "no original": Set fails and leaves the file alone, where it used
// to write over it and let Restore delete it.
func TestResolverDirFailedReadKeepsOriginal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "resolver")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := "nameserver 10.9.9.9\n"
	writeFileT(t, filepath.Join(dir, "corp.example"), theirs, 0o644)
	scutil := func() ([]byte, error) { return []byte(scutilSample), nil }
	r, err := newResolverDirDNS(dir, t.TempDir(), zaptest.NewLogger(t), scutil)
	if err != nil {
		t.Fatal(err)
	}
	r.readFile = func(string) ([]byte, error) { return nil, syscall.EMFILE }
	if err := r.Set(DNSConfig{Servers: agentV4, Domains: []string{"corp.example"}}); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("Set with a failing read = %v, want EMFILE", err)
	}
	r.readFile = os.ReadFile
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "corp.example")); string(b) != theirs {
		t.Errorf("corp.example = %q, want the other program's file untouched", b)
	}
}

// wantDir checks that dir holds exactly the files named, true for the agent's.
func wantDir(t *testing.T, dir string, want map[string]bool) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != len(want) {
		t.Errorf("%s holds %d files, want %d", dir, len(des), len(want))
	}
	for _, de := range des {
		b, _ := os.ReadFile(filepath.Join(dir, de.Name()))
		ours, ok := want[de.Name()]
		if !ok || ours != isResolverFileOurs(b) {
			t.Errorf("%s: present, ours=%v; want present=%v ours=%v", de.Name(), isResolverFileOurs(b), ok, ours)
		}
	}
}

func writeFileT(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}
