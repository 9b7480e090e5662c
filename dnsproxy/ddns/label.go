package ddns

import (
	"fmt"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// Label turns a host name into a DNS label that any server accepts: the part
// before the first dot, lower-cased, every character but a-z, 0-9 and '-'
// (and every run of them) replaced by one '-', no '-' at either end, at most
// 63 octets. "Jörg's MacBook Pro.local" becomes "j-rg-s-macbook-pro". It
// returns "" when nothing usable is left.
func Label(hostname string) string {
	first, _, _ := strings.Cut(hostname, ".")
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(first) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	label := strings.Trim(b.String(), "-")
	if len(label) > 63 {
		label = strings.TrimRight(label[:63], "-")
	}
	return label
}

// NameFor is the FQDN to register for hostname under suffix (the corporate
// DNS suffix the gateway pushes), e.g. "laptop1.corp.test.".
func NameFor(hostname, suffix string) (string, error) {
	label := Label(hostname)
	if label == "" {
		return "", fmt.Errorf("ddns: host name %q: no DNS label can be made of it", hostname)
	}
	zone, ok := canonicalName(suffix)
	if !ok {
		return "", fmt.Errorf("ddns: suffix %q: not a domain name", suffix)
	}
	name := label + "." + zone
	if _, ok := dns.IsDomainName(name); !ok || len(name) > 254 {
		return "", fmt.Errorf("ddns: name %s: too long", name)
	}
	return name, nil
}

// HostName is NameFor with this machine's host name.
func HostName(suffix string) (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("ddns: host name: %w", err)
	}
	return NameFor(h, suffix)
}
