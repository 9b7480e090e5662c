package platform

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrDomainsRequired is returned on macOS by Set when DNSConfig.Domains is
// empty. /etc/resolver files only add resolvers for named domains; the
// system's default resolver belongs to the network service configuration,
// which a daemon cannot replace without a Network Extension. The agent must
// name its private domains (the suffixes of its apps' host names): names
// under them reach the agent, every other name stays with the system's
// resolvers, which is also what the agent would have forwarded them to.
var ErrDomainsRequired = errors.New("the OS resolver here routes named domains only: DNSConfig.Domains is empty")

// osDNSPlan is what an OS resolver configurator writes for a DNSConfig: the
// pure half, computed the same way on every OS so that it is table-tested
// here, and applied by the OS's file (dns_darwin.go, dns_windows.go).
type osDNSPlan struct {
	// ResolverFiles are macOS /etc/resolver files.
	ResolverFiles []resolverFile
	// NRPTRules are Windows Name Resolution Policy Table rules.
	NRPTRules []nrptRule
}

// compileOSDNS computes the plan for cfg on goos ("darwin", "windows").
func compileOSDNS(goos string, cfg DNSConfig) (osDNSPlan, error) {
	if len(cfg.Servers) == 0 {
		return osDNSPlan{}, errors.New("no DNS servers to set")
	}
	domains, err := routingDomains(cfg.Domains)
	if err != nil {
		return osDNSPlan{}, err
	}
	switch goos {
	case "darwin":
		if len(domains) == 0 {
			return osDNSPlan{}, ErrDomainsRequired
		}
		return osDNSPlan{ResolverFiles: resolverFilesFor(domains, cfg)}, nil
	case "windows":
		return osDNSPlan{NRPTRules: nrptRulesFor(domains, cfg)}, nil
	}
	return osDNSPlan{}, fmt.Errorf("no resolver plan for %s", goos)
}

// routingDomains normalises domains (lower case, no "~" or surrounding dots),
// drops duplicates and refuses names that cannot be a file or registry key
// name. The root (".", "~.") means every name, as no domain at all does.
func routingDomains(domains []string) ([]string, error) {
	var out []string
	for _, d := range domains {
		n := normalizeDomain(d)
		if n == "." {
			return nil, nil
		}
		if strings.ContainsAny(n, `/\ `) || strings.Contains(n, "..") || len(n) > 253 {
			return nil, fmt.Errorf("invalid DNS domain %q", d)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// normalizeDomain is d lower-cased without "~" and the dots around it; the
// root is ".".
func normalizeDomain(d string) string {
	d = strings.ToLower(strings.Trim(strings.TrimPrefix(strings.TrimSpace(d), "~"), "."))
	if d == "" {
		return "."
	}
	return d
}
