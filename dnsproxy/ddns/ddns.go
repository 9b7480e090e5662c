// Package ddns registers the endpoint's L3E VPN address under its host name
// in corporate DNS, so that corporate servers and other laptops can reach it
// by name (the design's use case 1). It speaks RFC 2136 dynamic UPDATE signed
// with TSIG (RFC 8945, HMAC-SHA-2 only) to the zone's primary server, the way
// Windows and DHCP servers register clients with BIND or Active Directory.
//
// A name is claimed with an owner record, as RFC 4703 does for DHCP clients
// with DHCID: beside its A/AAAA records the device writes a TXT record
// "ztagent-owner=<Owner>" at the name. The first registration requires the
// name not to exist at all (prerequisite "name is not in use"); later ones
// (refreshes, a new address) require the TXT to hold exactly this device's
// owner value (a value-dependent "RRset exists" prerequisite) before they
// replace the A and AAAA sets. So one laptop never deletes another's name, nor
// a static record an administrator put there: the server answers NXRRSET and
// the client reports ErrNameTaken. Removal carries the same prerequisite.
// Prerequisites compare names literally, without wildcard expansion, so a
// zone with a catch-all `*` record still accepts registrations (e2e TestDDNS
// checks this against BIND9).
//
// Every update is signed; a success is believed only when the answer carries
// a TSIG that verifies with the same key, while a failure (REFUSED, NOTAUTH
// with a TSIG error such as BADSIG or BADKEY, …) is reported with its rcode
// whatever its signature. An answer truncated over UDP is asked again over
// TCP. Run keeps the name registered for as long as its context lives and
// removes it when the context is cancelled.
package ddns

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// Defaults for the zero values of Config.TTL and Config.Refresh.
const (
	DefaultTTL     = 60 * time.Second
	DefaultRefresh = 10 * time.Minute
)

// Config says where and what to register. Server, Zone, Name, KeyName,
// Secret and Owner are required.
type Config struct {
	Server    string        // the zone's primary server, host:port (port 53 when left out)
	Zone      string        // the zone to update, e.g. "corp.test."
	Name      string        // the FQDN to register inside Zone, e.g. "laptop1.corp.test." (see HostName)
	KeyName   string        // TSIG key name, e.g. "ztagent-ddns."
	Algorithm string        // TSIG algorithm: "hmac-sha256" (the default), "hmac-sha384" or "hmac-sha512"
	Secret    Secret        // the TSIG key, base64
	Owner     string        // this device's identity (e.g. its device ID), written in the owner TXT record
	TTL       time.Duration // TTL of the records, whole seconds (default DefaultTTL)
	Refresh   time.Duration // how often Run sends the registration again (default DefaultRefresh)
}

// Secret is a TSIG key in base64. It prints redacted, so that a Config can be
// logged without leaking it.
type Secret string

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return `ddns.Secret("[redacted]")` }

// algorithms are the TSIG algorithms accepted, by the name a configuration
// gives (with or without the final dot, any case).
var algorithms = map[string]string{
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// Client sends the updates of one Config. It holds no connection between
// calls and is safe for concurrent use.
type Client struct {
	cfg       Config // normalised: FQDNs in canonical form, server with a port
	algorithm string // the miekg name, e.g. "hmac-sha256."
	ttl       uint32
	log       *zap.Logger
	exchange  exchanger
	// Run's retry delays after a failure: doubling from retryMin up to
	// retryMax (tests shorten them).
	retryMin, retryMax time.Duration
	// registered: Run's last registration succeeded and it has not
	// removed the name since.
	registered atomic.Bool
}

// Registered reports whether Run's last attempt registered the name (and
// Run has not removed it since): what a status shows.
func (c *Client) Registered() bool { return c.registered.Load() }

// New checks cfg and returns a Client for it. Every problem is named with
// its field.
func New(cfg Config, log *zap.Logger) (*Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Client{log: log, retryMin: time.Second, retryMax: 5 * time.Minute}
	if err := c.setConfig(cfg); err != nil {
		return nil, err
	}
	c.retryMax = min(c.retryMax, c.cfg.Refresh)
	c.exchange = newExchanger(c.cfg.Server, c.cfg.KeyName, string(c.cfg.Secret), c.algorithm)
	return c, nil
}

func (c *Client) setConfig(cfg Config) error {
	var errs []error
	bad := func(field, value, why string) {
		errs = append(errs, fmt.Errorf("ddns: %s %q: %s", field, value, why))
	}
	if cfg.Server == "" {
		bad("server", cfg.Server, "empty")
	} else if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		if strings.Contains(err.Error(), "missing port") {
			cfg.Server = net.JoinHostPort(strings.Trim(cfg.Server, "[]"), "53")
		} else {
			bad("server", cfg.Server, "not host:port")
		}
	}
	var ok bool
	if cfg.Zone, ok = canonicalName(cfg.Zone); !ok {
		bad("zone", cfg.Zone, "not a domain name")
	}
	if cfg.Name, ok = canonicalName(cfg.Name); !ok {
		bad("name", cfg.Name, "not a domain name")
	} else if cfg.Name == cfg.Zone || !dns.IsSubDomain(cfg.Zone, cfg.Name) {
		bad("name", cfg.Name, "not a name inside zone "+cfg.Zone)
	}
	if cfg.KeyName, ok = canonicalName(cfg.KeyName); !ok {
		bad("key name", cfg.KeyName, "not a domain name")
	}
	alg := strings.TrimSuffix(strings.ToLower(cfg.Algorithm), ".")
	if alg == "" {
		alg = "hmac-sha256"
	}
	if c.algorithm, ok = algorithms[alg]; !ok {
		bad("algorithm", cfg.Algorithm, "not supported (hmac-sha256, hmac-sha384 or hmac-sha512)")
	}
	if key, err := base64.StdEncoding.DecodeString(string(cfg.Secret)); err != nil || len(key) == 0 {
		errs = append(errs, errors.New("ddns: secret: not a non-empty base64 key"))
	}
	if cfg.Owner == "" {
		bad("owner", cfg.Owner, "empty")
	}
	switch {
	case cfg.TTL == 0:
		cfg.TTL = DefaultTTL
	case cfg.TTL < time.Second || cfg.TTL%time.Second != 0 || cfg.TTL > 24*time.Hour:
		bad("ttl", cfg.TTL.String(), "not whole seconds between 1s and 24h")
	}
	switch {
	case cfg.Refresh == 0:
		cfg.Refresh = DefaultRefresh
	case cfg.Refresh < time.Second:
		bad("refresh", cfg.Refresh.String(), "shorter than 1s")
	}
	c.cfg, c.ttl = cfg, uint32(cfg.TTL/time.Second)
	return errors.Join(errs...)
}

// canonicalName returns s as a lower-case FQDN, and whether it is a valid
// domain name other than the root.
func canonicalName(s string) (string, bool) {
	if s == "" || s == "." {
		return s, false
	}
	if _, ok := dns.IsDomainName(s); !ok {
		return s, false
	}
	return dns.CanonicalName(s), true
}
