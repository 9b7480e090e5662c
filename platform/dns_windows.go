package platform

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// NewDNSConfigurator returns the Windows resolver configurator: NRPT rules
// named "ztagent-<namespace>" (nrpt.go). Rules left by a crashed run are
// removed first.
func NewDNSConfigurator(stateDir string, log *zap.Logger) (DNSConfigurator, error) {
	return newNRPTDNS(registryNRPT{}, stateDir, log)
}

var (
	dnsapi                    = windows.NewLazySystemDLL("dnsapi.dll")
	procDnsFlushResolverCache = dnsapi.NewProc("DnsFlushResolverCache")
)

// registryNRPT is the nrptStore of the running system.
type registryNRPT struct{}

func (registryNRPT) Keys() ([]string, error) {
	parent, err := registry.OpenKey(registry.LOCAL_MACHINE, nrptParentKey, registry.ENUMERATE_SUB_KEYS)
	if errors.Is(err, registry.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return parent.ReadSubKeyNames(-1)
}

func (registryNRPT) Write(r nrptRule) error {
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

func (registryNRPT) Delete(key string) error {
	err := registry.DeleteKey(registry.LOCAL_MACHINE, nrptParentKey+`\`+key)
	if errors.Is(err, registry.ErrNotExist) {
		return nil
	}
	return err
}

// Flush calls DnsFlushResolverCache, which dnsapi.dll exports undocumented
// (ipconfig /flushdns uses it); it returns a BOOL.
func (registryNRPT) Flush() error {
	if err := procDnsFlushResolverCache.Find(); err != nil {
		return err
	}
	if ok, _, err := procDnsFlushResolverCache.Call(); ok == 0 {
		return fmt.Errorf("DnsFlushResolverCache: %w", err)
	}
	return nil
}

// Upstreams lists the DNS servers of every adapter that is up, except the
// one named excludeInterface (the agent's).
func (registryNRPT) Upstreams(excludeInterface string) ([]netip.AddrPort, error) {
	aas, err := adapterAddresses()
	if err != nil {
		return nil, fmt.Errorf("GetAdaptersAddresses: %w", err)
	}
	var out []netip.AddrPort
	for aa := aas; aa != nil; aa = aa.Next {
		if aa.OperStatus != windows.IfOperStatusUp ||
			(excludeInterface != "" && windows.UTF16PtrToString(aa.FriendlyName) == excludeInterface) {
			continue
		}
		for s := aa.FirstDnsServerAddress; s != nil; s = s.Next {
			a, ok := netip.AddrFromSlice(s.Address.IP())
			if !ok {
				continue
			}
			ap := netip.AddrPortFrom(a.Unmap(), 53)
			if !isWindowsDefaultSiteLocalDNS(ap.Addr()) && !slices.Contains(out, ap) {
				out = append(out, ap)
			}
		}
	}
	return out, nil
}

// isWindowsDefaultSiteLocalDNS: Windows lists fec0:0:0:ffff::1-3 on adapters
// that have no IPv6 DNS server; nothing answers there.
func isWindowsDefaultSiteLocalDNS(a netip.Addr) bool {
	return netip.MustParsePrefix("fec0:0:0:ffff::/64").Contains(a)
}

// adapterAddresses returns the adapters with their DNS servers, retrying with
// the size Windows asks for while the list grows.
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
	return nil, errors.New("the adapter list kept growing")
}
