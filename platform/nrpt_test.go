package platform

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"
)

// fakeNRPT is an in-memory registry under nrptParentKey that records, for
// every write, whether the journal already listed the key.
type fakeNRPT struct {
	journal   string
	rules     map[string]nrptRule
	unjournal []string // keys written before the journal named them
	flushes   int
	upstreams []netip.AddrPort
	excluded  string
	deleteErr error
}

func (f *fakeNRPT) Keys() ([]string, error) { return slices.Sorted(maps.Keys(f.rules)), nil }

func (f *fakeNRPT) Write(r nrptRule) error {
	var j nrptJournal
	if ok, err := (journal{path: f.journal}).read(&j); err != nil || !ok || !slices.Contains(j.Keys, r.Key) {
		f.unjournal = append(f.unjournal, r.Key)
	}
	f.rules[r.Key] = r
	return nil
}

func (f *fakeNRPT) Delete(key string) error {
	if f.deleteErr != nil {
		return f.deleteErr
	}
	delete(f.rules, key)
	return nil
}

func (f *fakeNRPT) Flush() error { f.flushes++; return nil }

func (f *fakeNRPT) Upstreams(exclude string) ([]netip.AddrPort, error) {
	f.excluded = exclude
	return slices.Clone(f.upstreams), nil
}

func TestNRPTSetRestoreRepair(t *testing.T) {
	state := t.TempDir()
	foreign := nrptRule{Key: "{5abe529b-675b-4486-8459-25a634dacc23}", Name: ".other.example"}
	f := &fakeNRPT{journal: filepath.Join(state, nrptJournalName), rules: map[string]nrptRule{foreign.Key: foreign},
		upstreams: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53"), netip.MustParseAddrPort("100.64.0.53:53")}}
	log := zaptest.NewLogger(t)
	d, err := newNRPTDNS(f, state, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DNSConfig{Servers: agentV4, Domains: []string{"corp.example", "apps.example"}, Interface: "ztagent"}
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, f, foreign.Key, "ztagent-.apps.example", "ztagent-.corp.example")
	if up, _ := d.Upstreams(); !slices.Equal(up, f.upstreams[:1]) || f.excluded != "ztagent" {
		t.Errorf("Upstreams = %v (excluding %q), want %v without the agent's", up, f.excluded, f.upstreams[:1])
	}
	// Every name now: the domain rules go, the "." rule comes.
	if err := d.Set(DNSConfig{Servers: agentV4}); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, f, foreign.Key, "ztagent-.")
	if f.unjournal != nil {
		t.Errorf("rules written before the journal named them: %v", f.unjournal)
	}
	if err := d.Restore(); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, f, foreign.Key)
	if f.flushes != 3 {
		t.Errorf("%d cache flushes, want one per Set and Restore", f.flushes)
	}
	if _, err := os.Stat(f.journal); !os.IsNotExist(err) {
		t.Errorf("journal after Restore: %v", err)
	}

	// A crash: the next start removes the journalled rules and any other
	// with the agent's prefix (a run whose state directory was lost).
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	f.rules["ZTAGENT-.lost.example"] = nrptRule{Key: "ZTAGENT-.lost.example"}
	if _, err := newNRPTDNS(f, state, log); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, f, foreign.Key)
	if _, err := os.Stat(f.journal); !os.IsNotExist(err) {
		t.Errorf("journal after repair: %v", err)
	}

	// A failed repair keeps the journal for the next try.
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	f.deleteErr = errors.New("access denied")
	if _, err := newNRPTDNS(f, state, log); err == nil {
		t.Fatal("repair with failing deletes succeeded")
	}
	if _, err := os.Stat(f.journal); err != nil {
		t.Errorf("journal after a failed repair: %v", err)
	}
}

func wantKeys(t *testing.T, f *fakeNRPT, want ...string) {
	t.Helper()
	got, _ := f.Keys()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("rules %v, want %v", got, want)
	}
	for _, k := range got {
		if r := f.rules[k]; isNRPTKeyOurs(k) && r.Name != "" && fmt.Sprint(r.ConfigOptions, r.Version) != "8 2" {
			t.Errorf("rule %s: %+v", k, r)
		}
	}
}
