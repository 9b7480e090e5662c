package steering

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// OnPremDetection says how the agent knows that it sits on the corporate
// network, where private-app steering stands aside: private names resolve
// through the OS's own resolvers (the corporate DNS) and flows go direct.
// Exactly one of DNS and Beacon is set.
type OnPremDetection struct {
	// DNS is on premises when the OS's own resolvers answer a name with a
	// given address.
	DNS *OnPremDNS `json:"dns,omitempty" yaml:"dns,omitempty"`
	// Beacon is on premises when an HTTPS server presents the pinned
	// certificate: the check that cannot be spoofed by whoever runs the
	// local network.
	Beacon *OnPremBeacon `json:"beacon,omitempty" yaml:"beacon,omitempty"`
	// Interval is how often the check runs besides at start and on every
	// network change; default 1m (DefaultOnPremInterval).
	Interval Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
}

// OnPremDNS is the DNS check: Name, asked of the OS's resolvers, must have
// Address among its answers (A or AAAA).
type OnPremDNS struct {
	Name    string `json:"name" yaml:"name"`
	Address string `json:"address" yaml:"address"`
}

// OnPremBeacon is the HTTPS check: URL must present a certificate whose
// SHA-256 (of its DER encoding, as `openssl x509 -fingerprint -sha256`
// prints it) is SHA256. Any HTTP answer will do; redirects are not
// followed.
type OnPremBeacon struct {
	URL    string `json:"url" yaml:"url"`
	SHA256 string `json:"sha256" yaml:"sha256"`
}

// Bounds and default of client.onprem_detection.interval.
const (
	DefaultOnPremInterval = time.Minute
	MinOnPremInterval     = 5 * time.Second
	MaxOnPremInterval     = time.Hour
)

// ParseFingerprint reads a SHA-256 fingerprint in hex, with or without
// colons between the bytes, in either case.
func ParseFingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	switch {
	case err != nil:
		return fp, errors.New("not a hex SHA-256 fingerprint")
	case len(b) != len(fp):
		return fp, errors.New("a SHA-256 fingerprint has 32 bytes")
	}
	copy(fp[:], b)
	return fp, nil
}

// ParseBeaconURL checks a beacon URL: https, a host, no user information.
func ParseBeaconURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "https":
		return nil, errors.New("the beacon must be an https URL")
	case u.Hostname() == "":
		return nil, errors.New("the URL has no host")
	case u.User != nil:
		return nil, errors.New("the URL must not carry user information")
	}
	return u, nil
}

// DefaultCaptiveCheck is client.captive_check when unset: the URL Android
// and Chrome OS check, answered 204 everywhere but behind a portal.
const DefaultCaptiveCheck = "http://connectivitycheck.gstatic.com/generate_204"

// CaptiveCheckOff is the client.captive_check that turns the check off.
const CaptiveCheckOff = "off"

// checkCaptive validates client.captive_check: an http URL (a portal can
// only answer for plain HTTP) with a host and no user information, or "off".
func (ck *checked) checkCaptive(s string) {
	if s == "" || s == CaptiveCheckOff {
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		ck.errorf("client.captive_check", s, "not a URL")
	case u.Scheme != "http":
		ck.errorf("client.captive_check", s, `must be an http URL (a portal cannot answer for https) or "off"`)
	case u.Hostname() == "":
		ck.errorf("client.captive_check", s, "the URL has no host")
	case u.User != nil:
		ck.errorf("client.captive_check", s, "the URL must not carry user information")
	}
}

// checkOnPrem validates client.onprem_detection.
func (ck *checked) checkOnPrem(o *OnPremDetection) {
	const p = "client.onprem_detection"
	switch {
	case o.DNS == nil && o.Beacon == nil:
		ck.errorf(p, "", "one of dns or beacon is required")
	case o.DNS != nil && o.Beacon != nil:
		ck.errorf(p, "", "dns or beacon, not both")
	}
	if d := o.DNS; d != nil {
		if h, err := ParseHost(d.Name); err != nil {
			ck.errorf(p+".dns.name", d.Name, "%v", err)
		} else if h.Kind != HostName {
			ck.errorf(p+".dns.name", d.Name, "must be one host name, not %s", h.Kind.withArticle())
		}
		if _, err := netip.ParseAddr(d.Address); err != nil {
			ck.errorf(p+".dns.address", d.Address, "must be an IPv4 or IPv6 address")
		}
	}
	if b := o.Beacon; b != nil {
		if _, err := ParseBeaconURL(b.URL); err != nil {
			ck.errorf(p+".beacon.url", b.URL, "%v", err)
		}
		if _, err := ParseFingerprint(b.SHA256); err != nil {
			ck.errorf(p+".beacon.sha256", b.SHA256, "%v", err)
		}
	}
	if d := o.Interval; d != 0 && (d.D() < MinOnPremInterval || d.D() > MaxOnPremInterval) {
		ck.errorf(p+".interval", d.String(), "must be between %v and %v (or unset for the default)", MinOnPremInterval, MaxOnPremInterval)
	}
}
