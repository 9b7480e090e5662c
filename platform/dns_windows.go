package platform

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

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
	log     *zap.Logger
	journal journal

	mu   sync.Mutex
	keys []string // rule keys written, while the agent has any
	cfg  DNSConfig
}

var (
	dnsapi                    = windows.NewLazySystemDLL("dnsapi.dll")
	procDnsFlushResolverCache = dnsapi.NewProc("DnsFlushResolverCache")
)

// NewDNSConfigurator returns the Windows resolver configurator. Rules left by
// a crashed run (journalled, or carrying the agent's key prefix) are removed
// first.
func NewDNSConfigurator(stateDir string, log *zap.Logger) (DNSConfigurator, error) {
	if log == nil {
		log = zap.NewNop()
	}
	j, err := newJournal(stateDir, nrptJournalName)
	if err != nil {
		return nil, err
	}
	d := &nrptDNS{log: log.Named("dns"), journal: j}
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
	parent, err := registry.OpenKey(registry.LOCAL_MACHINE, nrptParentKey, registry.ENUMERATE_SUB_KEYS)
	if err == nil {
		names, _ := parent.ReadSubKeyNames(-1)
		parent.Close()
		for _, n := range names {
			if isNRPTKeyOurs(n) && !slices.Contains(keys, n) {
				keys = append(keys, n)
			}
		}
	}
	if len(keys) == 0 {
		return d.journal.clear()
	}
	d.log.Warn("removing NRPT rules left by a previous run that did not stop cleanly", zap.Strings("keys", keys))
	if err := deleteNRPTKeys(keys); err != nil {
		return fmt.Errorf("repairing NRPT rules: %w", err)
	}
	flushDNSCache(d.log)
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
		if err := writeNRPTRule(r); err != nil {
			return fmt.Errorf("NRPT rule %s: %w", r.Key, err)
		}
	}
	stale := slices.DeleteFunc(slices.Clone(all), func(k string) bool { return slices.Contains(want, k) })
	if err := deleteNRPTKeys(stale); err != nil {
		return fmt.Errorf("NRPT: %w", err)
	}
	if err := d.journal.write(nrptJournal{Version: 1, Intent: "set", Keys: want}); err != nil {
		return err
	}
	d.keys, d.cfg = want, cfg
	flushDNSCache(d.log)
	return nil
}

func writeNRPTRule(r nrptRule) error {
	k, _, err := registry.CreateKey(registry.LOCAL_MACHINE, nrptParentKey+`\`+r.Key, registry.SET_VALUE)
	if err != nil {
		return err
	}
	defer k.Close()
	return errors.Join(
		k.SetStringsValue("Name", []string{r.Name}),
		k.SetStringValue("GenericDNSServers", r.GenericDNSServers),
		k.SetDWordValue("ConfigOptions", r.ConfigOptions),
		k.SetDWordValue("Version", r.Version),
		k.SetStringValue("Comment", "ztagent"),
		k.SetStringValue("DisplayName", ""),
		k.SetStringValue("IPSECCARestriction", ""),
	)
}

func deleteNRPTKeys(keys []string) error {
	var errs []error
	for _, k := range keys {
		if !isNRPTKeyOurs(k) {
			continue // never delete another program's rule, whatever a journal says
		}
		err := registry.DeleteKey(registry.LOCAL_MACHINE, nrptParentKey+`\`+k)
		if err != nil && !errors.Is(err, registry.ErrNotExist) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// flushDNSCache drops the DNS client's cached answers, so names resolved
// before the rules changed take the new route. It is best effort: a failed
// flush only delays the change until the entries expire.
func flushDNSCache(log *zap.Logger) {
	if err := procDnsFlushResolverCache.Find(); err != nil {
		log.Warn("DnsFlushResolverCache unavailable", zap.Error(err))
		return
	}
	if ok, _, err := procDnsFlushResolverCache.Call(); ok == 0 {
		log.Warn("DnsFlushResolverCache failed", zap.Error(err))
	}
}

// Restore implements DNSConfigurator.
func (d *nrptDNS) Restore() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		return nil
	}
	if err := deleteNRPTKeys(d.keys); err != nil {
		return fmt.Errorf("NRPT: %w (the rules are listed in %s)", err, d.journal.path)
	}
	flushDNSCache(d.log)
	if err := d.journal.clear(); err != nil {
		return err
	}
	d.keys, d.cfg = nil, DNSConfig{}
	return nil
}

// Upstreams implements DNSConfigurator: the DNS servers of every adapter that
// is up, except the agent's own. NRPT rules leave the adapters' servers
// unchanged, so they are the system's resolvers while the agent runs too.
func (d *nrptDNS) Upstreams() ([]netip.AddrPort, error) {
	d.mu.Lock()
	own, iface := slices.Clone(d.cfg.Servers), d.cfg.Interface
	d.mu.Unlock()
	aas, err := adapterAddresses()
	if err != nil {
		return nil, fmt.Errorf("GetAdaptersAddresses: %w", err)
	}
	var out []netip.AddrPort
	for aa := aas; aa != nil; aa = aa.Next {
		if aa.OperStatus != windows.IfOperStatusUp || (iface != "" && windows.UTF16PtrToString(aa.FriendlyName) == iface) {
			continue
		}
		for s := aa.FirstDnsServerAddress; s != nil; s = s.Next {
			a, ok := netip.AddrFromSlice(s.Address.IP())
			if !ok {
				continue
			}
			ap := netip.AddrPortFrom(a.Unmap(), 53)
			if isWindowsDefaultSiteLocalDNS(a) || slices.Contains(own, ap.Addr()) || slices.Contains(out, ap) {
				continue
			}
			out = append(out, ap)
		}
	}
	return out, nil
}

// isWindowsDefaultSiteLocalDNS: Windows lists fec0:0:0:ffff::1-3 on adapters
// that have no IPv6 DNS server; nothing answers there.
func isWindowsDefaultSiteLocalDNS(a netip.Addr) bool {
	return netip.MustParsePrefix("fec0:0:0:ffff::/64").Contains(a)
}

func adapterAddresses() (*windows.IpAdapterAddresses, error) {
	const flags = windows.GAA_FLAG_SKIP_UNICAST | windows.GAA_FLAG_SKIP_ANYCAST | windows.GAA_FLAG_SKIP_MULTICAST
	size := uint32(15 << 10)
	for range 4 {
		buf := make([]byte, size)
		aa := (*windows.IpAdapterAddresses)(unsafe.Pointer(&buf[0]))
		err := windows.GetAdaptersAddresses(windows.AF_UNSPEC, flags, 0, aa, &size)
		if err == nil {
			return aa, nil
		}
		if !errors.Is(err, windows.ERROR_BUFFER_OVERFLOW) {
			return nil, err
		}
	}
	return nil, errors.New("adapter list kept growing")
}
