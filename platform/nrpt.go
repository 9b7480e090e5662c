package platform

// This file is the pure half of the Windows configurator (dns_windows.go),
// built on every OS so that it is tested everywhere.

import (
	"strings"
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
