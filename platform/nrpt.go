package platform

// This file is the Windows configurator's logic: which NRPT rules for which
// state, and its journal and repair. It is built on every OS, so that it is
// tested everywhere against an in-memory registry; dns_windows.go supplies
// the real registry, the cache flush and the adapters' DNS servers.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// nrptKeyPrefix starts the name of every NRPT rule the agent writes under
// nrptParentKey: rules with it are the agent's, and leftovers with it are
// removed at start.
const nrptKeyPrefix = "ztagent-"

// nrptParentKey holds the local NRPT rules (HKEY_LOCAL_MACHINE).
const nrptParentKey = `SYSTEM\CurrentControlSet\Services\Dnscache\Parameters\DnsPolicyConfig`

// NRPT rule values, as Add-DnsClientNrptRule writes them.
const (
	nrptConfigOptionsGenericDNS = 8 // GenericDNSServers only: no DNSSEC, no DirectAccess
	nrptVersion                 = 2
)

// nrptRule is one registry key under nrptParentKey.
type nrptRule struct {
	Key string
	// Name is the rule's namespace: ".corp.example" (the domain and every
	// name under it), or "." (every name).
	Name              string
	GenericDNSServers string // ';'-separated
	ConfigOptions     uint32
	Version           uint32
}

// nrptRulesFor gives one rule per domain, or a single "." rule when domains
// is empty (every name goes to the agent).
func nrptRulesFor(domains []string, cfg DNSConfig) []nrptRule {
	servers := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		servers[i] = s.String()
	}
	names := []string{"."}
	if len(domains) > 0 {
		names = names[:0]
		for _, d := range domains {
			names = append(names, "."+d)
		}
	}
	rules := make([]nrptRule, 0, len(names))
	for _, n := range names {
		rules = append(rules, nrptRule{
			Key:               nrptKeyPrefix + n,
			Name:              n,
			GenericDNSServers: strings.Join(servers, ";"),
			ConfigOptions:     nrptConfigOptionsGenericDNS,
			Version:           nrptVersion,
		})
	}
	return rules
}

// isNRPTKeyOurs reports whether a rule key under nrptParentKey is the agent's.
func isNRPTKeyOurs(key string) bool {
	return strings.HasPrefix(strings.ToLower(key), nrptKeyPrefix)
}

// nrptStore is the registry under nrptParentKey and the DNS client around it.
type nrptStore interface {
	Keys() ([]string, error) // the rule keys present
	Write(r nrptRule) error  // creates or replaces r's key
	Delete(key string) error // an absent key is not an error
	Flush() error            // the DNS client's cache
	Upstreams(excludeInterface string) ([]netip.AddrPort, error)
}

// nrptJournalName is the journal's file name in the state directory.
const nrptJournalName = "dns-nrpt.journal"

// nrptJournal lists the NRPT rule keys the agent has written or is about to.
type nrptJournal struct {
	Version int      `json:"version"`
	Intent  string   `json:"intent"` // "set"
	Keys    []string `json:"keys"`
}

// nrptDNS points private domains (or every name) at the agent with local
// Name Resolution Policy Table rules, which the DNS Client service applies
// to every adapter, then flushes the DNS client cache so that names resolved
// before take the new route.
//
// Rules under the Group Policy key (SOFTWARE\Policies\...\DnsPolicyConfig)
// take precedence over local ones when any exist; that case is not handled.
type nrptDNS struct {
	store   nrptStore
	log     *zap.Logger
	journal journal

	mu   sync.Mutex
	keys []string // rule keys written, while the agent has any
	cfg  DNSConfig
}

// newNRPTDNS removes the rules of a crashed run (journalled, or carrying the
// agent's key prefix) before it returns.
func newNRPTDNS(store nrptStore, stateDir string, log *zap.Logger) (*nrptDNS, error) {
	if log == nil {
		log = zap.NewNop()
	}
	j, err := newJournal(stateDir, nrptJournalName)
	if err != nil {
		return nil, err
	}
	d := &nrptDNS{store: store, log: log.Named("dns"), journal: j}
	if err := d.repair(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *nrptDNS) repair() error {
	var entry nrptJournal
	if _, err := d.journal.read(&entry); err != nil {
		return err
	}
	keys := entry.Keys
	present, err := d.store.Keys()
	if err != nil {
		d.log.Warn("cannot list NRPT rules; removing only the journalled ones", zap.Error(err))
	}
	for _, k := range present {
		if isNRPTKeyOurs(k) && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return d.journal.clear()
	}
	d.log.Warn("removing NRPT rules left by a previous run that did not stop cleanly", zap.Strings("keys", keys))
	if err := d.deleteKeys(keys); err != nil {
		return fmt.Errorf("repairing NRPT rules: %w", err)
	}
	d.flush()
	return d.journal.clear()
}

// Mode implements DNSConfigurator.
func (d *nrptDNS) Mode() string { return "nrpt" }

// Set implements DNSConfigurator: the journal lists every key before any is
// written; keys of domains no longer routed are deleted afterwards.
func (d *nrptDNS) Set(cfg DNSConfig) error {
	plan, err := compileOSDNS("windows", cfg)
	if err != nil {
		return fmt.Errorf("NRPT: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	all := slices.Clone(d.keys)
	var want []string
	for _, r := range plan.NRPTRules {
		want = append(want, r.Key)
		if !slices.Contains(all, r.Key) {
			all = append(all, r.Key)
		}
	}
	if err := d.journal.write(nrptJournal{Version: 1, Intent: "set", Keys: all}); err != nil {
		return err
	}
	d.keys = all
	for _, r := range plan.NRPTRules {
		if err := d.store.Write(r); err != nil {
			return fmt.Errorf("NRPT rule %s: %w", r.Key, err)
		}
	}
	stale := slices.DeleteFunc(slices.Clone(all), func(k string) bool { return slices.Contains(want, k) })
	if err := d.deleteKeys(stale); err != nil {
		return fmt.Errorf("NRPT: %w", err)
	}
	if err := d.journal.write(nrptJournal{Version: 1, Intent: "set", Keys: want}); err != nil {
		return err
	}
	d.keys, d.cfg = want, cfg
	d.flush()
	return nil
}

func (d *nrptDNS) deleteKeys(keys []string) error {
	var errs []string
	for _, k := range keys {
		if !isNRPTKeyOurs(k) {
			continue // never another program's rule, whatever a journal says
		}
		if err := d.store.Delete(k); err != nil {
			errs = append(errs, fmt.Sprintf("deleting %s: %v", k, err))
		}
	}
	if errs != nil {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// flush is best effort: a failed flush only delays the change until the
// cached entries expire.
func (d *nrptDNS) flush() {
	if err := d.store.Flush(); err != nil {
		d.log.Warn("flushing the DNS client cache failed", zap.Error(err))
	}
}

// Restore implements DNSConfigurator.
func (d *nrptDNS) Restore() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		return nil
	}
	if err := d.deleteKeys(d.keys); err != nil {
		return fmt.Errorf("NRPT: %w (the rules are listed in %s)", err, d.journal.path)
	}
	d.flush()
	if err := d.journal.clear(); err != nil {
		return err
	}
	d.keys, d.cfg = nil, DNSConfig{}
	return nil
}

// Upstreams implements DNSConfigurator: the DNS servers of the adapters other
// than the agent's. NRPT rules leave the adapters' servers unchanged, so they
// are the system's resolvers while the agent runs too.
func (d *nrptDNS) Upstreams() ([]netip.AddrPort, error) {
	d.mu.Lock()
	own, iface := slices.Clone(d.cfg.Servers), d.cfg.Interface
	d.mu.Unlock()
	up, err := d.store.Upstreams(iface)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(up, func(a netip.AddrPort) bool { return slices.Contains(own, a.Addr()) }), nil
}
