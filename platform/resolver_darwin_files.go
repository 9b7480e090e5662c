package platform

// This file is the pure half of the macOS configurator (dns_darwin.go), built
// on every OS so that it is tested everywhere.

import (
	"bufio"
	"bytes"
	"net/netip"
	"strconv"
	"strings"
)

// resolverDir is where macOS looks for per-domain resolver files
// (resolver(5)).
const resolverDir = "/etc/resolver"

// resolverMarker starts every file the agent writes; a file without it is
// never the agent's to change or remove.
const resolverMarker = "# ztagent"

// resolverFile is one /etc/resolver/<Name> file.
type resolverFile struct {
	Name    string // the domain
	Content []byte
}

func resolverFilesFor(domains []string, cfg DNSConfig) []resolverFile {
	var body bytes.Buffer
	body.WriteString(resolverMarker + ": written by the ztagent agent, removed when it stops.\n")
	for _, s := range cfg.Servers {
		body.WriteString("nameserver " + s.String() + "\n")
	}
	// search_order: these files outrank other supplemental resolvers for
	// the same domain (lower is first; the default is 200000).
	body.WriteString("search_order 1\n")
	files := make([]resolverFile, 0, len(domains))
	for _, d := range domains {
		files = append(files, resolverFile{Name: d, Content: bytes.Clone(body.Bytes())})
	}
	return files
}

// isResolverFileOurs reports whether content is a file the agent wrote.
func isResolverFileOurs(content []byte) bool {
	return bytes.HasPrefix(content, []byte(resolverMarker))
}

// parseScutilDNS reads `scutil --dns` output and returns the default
// resolvers' servers: the nameservers of the resolvers in the first section
// ("DNS configuration", not "... (for scoped queries)") that have no
// "domain" line, since those with one are supplemental (per-domain, mDNS or
// the agent's own /etc/resolver files). A "port" line gives the port
// (default 53). Scoped link-local addresses keep their zone.
func parseScutilDNS(out []byte) []netip.AddrPort {
	var (
		res       []netip.AddrPort
		servers   []netip.Addr
		port      uint16 = 53
		domain    bool
		inDefault bool
	)
	flush := func() {
		if inDefault && !domain {
			for _, a := range servers {
				if ap := netip.AddrPortFrom(a, port); !containsAddrPort(res, ap) {
					res = append(res, ap)
				}
			}
		}
		servers, port, domain = nil, 53, false
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "DNS configuration"):
			flush()
			inDefault = line == "DNS configuration"
			continue
		case strings.HasPrefix(line, "resolver #"):
			flush()
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch {
		case strings.HasPrefix(key, "nameserver["):
			if a, err := netip.ParseAddr(val); err == nil {
				servers = append(servers, a)
			}
		case key == "port":
			if p, err := strconv.ParseUint(val, 10, 16); err == nil && p != 0 {
				port = uint16(p)
			}
		case key == "domain":
			domain = true
		}
	}
	flush()
	return res
}

func containsAddrPort(s []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}
