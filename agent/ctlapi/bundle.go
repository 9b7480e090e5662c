package ctlapi

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// PathBundle is `ztdiag -o FILE`: the agent (root) gathers the diagnostics
// bundle and ztdiag writes it as a zip.
const PathBundle = "/v1/bundle" // POST BundleRequest: Bundle (root)

// BundleRequest asks for the diagnostics bundle.
type BundleRequest struct {
	// Anonymize hides user names, host names and private addresses.
	Anonymize bool `json:"anonymize"`
}

// Bundle is the diagnostics bundle: named text files, secrets removed.
type Bundle struct {
	Files []BundleFile `json:"files"`
}

// BundleFile is one file of the bundle; Name is a slash-separated path.
type BundleFile struct {
	Name string `json:"name"`
	Data string `json:"data"`
}

// Redact replaces every secret (of 6 bytes or more: shorter ones would
// match by chance) with [redacted] in every file of b.
func (b *Bundle) Redact(secrets []string) {
	var pairs []string
	for _, s := range secrets {
		if len(s) >= 6 {
			pairs = append(pairs, s, "[redacted]")
		}
	}
	if len(pairs) == 0 {
		return
	}
	r := strings.NewReplacer(pairs...)
	for i := range b.Files {
		b.Files[i].Data = r.Replace(b.Files[i].Data)
	}
}

// Anonymizer hides user names, host names and private addresses in text,
// each replaced by the same token wherever it appears (user-1, host-2,
// private-3), so that a bundle still shows which lines concern the same
// user, host or address. Names it is told (Add) are found as words; e-mail
// addresses and private, shared (100.64/10), loopback-free link-local and
// unique-local IP addresses are found by their form.
type Anonymizer struct {
	known  map[string]string // name (lower case) → token
	counts map[string]int    // kind → tokens given
}

// NewAnonymizer returns an Anonymizer that knows no name yet.
func NewAnonymizer() *Anonymizer {
	return &Anonymizer{known: map[string]string{}, counts: map[string]int{}}
}

// Add makes name (a user or host name) hidden as kind-N. Names shorter than
// 3 bytes are ignored: they would match inside other words.
func (a *Anonymizer) Add(kind, name string) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if len(name) < 3 || a.known[name] != "" {
		return
	}
	a.known[name] = a.token(kind)
}

func (a *Anonymizer) token(kind string) string {
	a.counts[kind]++
	return fmt.Sprintf("%s-%d", kind, a.counts[kind])
}

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*`)
	// ipRE finds candidates, checked with netip: IPv4 dotted quads and
	// IPv6 forms (with at least two colons).
	ipRE   = regexp.MustCompile(`[0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}(%[A-Za-z0-9]+)?`)
	wordRE = regexp.MustCompile(`[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]`)
	cgnat  = netip.MustParsePrefix("100.64.0.0/10")
)

// Text returns s anonymized.
func (a *Anonymizer) Text(s string) string {
	s = emailRE.ReplaceAllStringFunc(s, func(m string) string {
		user, host, _ := strings.Cut(m, "@")
		return a.word("user", user) + "@" + a.word("host", host)
	})
	s = ipRE.ReplaceAllStringFunc(s, func(m string) string {
		addr, err := netip.ParseAddr(m)
		if err != nil || !private(addr) {
			return m
		}
		return a.word("private", m)
	})
	return wordRE.ReplaceAllStringFunc(s, func(m string) string {
		if t := a.lookup(m); t != "" {
			return t
		}
		return m
	})
}

// lookup returns the token of m, a whole known name, or "".
func (a *Anonymizer) lookup(m string) string {
	return a.known[strings.ToLower(strings.TrimSuffix(m, "."))]
}

// word returns m's token, giving it one of kind if it has none.
func (a *Anonymizer) word(kind, m string) string {
	if t := a.lookup(m); t != "" {
		return t
	}
	a.Add(kind, m)
	if t := a.known[strings.ToLower(m)]; t != "" {
		return t
	}
	return m
}

func private(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsPrivate() || addr.IsLinkLocalUnicast() || (addr.Is4() && cgnat.Contains(addr))
}

// Anonymize anonymizes every file of b, and their names.
func (b *Bundle) Anonymize(a *Anonymizer) {
	for i := range b.Files {
		b.Files[i].Data = a.Text(b.Files[i].Data)
		b.Files[i].Name = a.Text(b.Files[i].Name)
	}
}
