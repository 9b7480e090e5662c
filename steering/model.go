package steering

// The types in this file are the wire and file model, shared by the tenant file
// (ztcloud), the config the tenant sends to the agent, and MDM-pushed config. Their
// JSON and YAML names are a public format: change them only with a migration.

// App is one private application.
type App struct {
	// ID is the stable identifier administrators and logs refer to.
	ID   string `json:"id" yaml:"id"`
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Hosts are exact FQDNs ("wiki.corp.example"), wildcards ("*.corp.example":
	// any name below corp.example at any depth, not corp.example itself), IPv4 and
	// IPv6 addresses, ranges ("10.1.0.10-10.1.0.90") and CIDRs ("10.2.0.0/16").
	Hosts []string `json:"hosts" yaml:"hosts"`
	// TCP and UDP are port sets: lists and ranges, "22,80,443,8000-8099". An empty
	// set means the app does not use that protocol; "*" or "1-65535" means all ports.
	TCP string `json:"tcp,omitempty" yaml:"tcp,omitempty"`
	UDP string `json:"udp,omitempty" yaml:"udp,omitempty"`
	// Publishers that can reach the app, by name.
	Publishers []string `json:"publishers,omitempty" yaml:"publishers,omitempty"`
	// PublisherDNS resolves the app's names through a publisher to their real
	// addresses instead of answering with a stub address.
	PublisherDNS bool     `json:"publisher_dns,omitempty" yaml:"publisher_dns,omitempty"`
	Tags         []string `json:"tags,omitempty" yaml:"tags,omitempty"`
	// Tunnel carries the app: "l7" (default). "l3e" is refused as not
	// supported yet until the L3E tunnel exists.
	Tunnel string `json:"tunnel,omitempty" yaml:"tunnel,omitempty"`
}

// Exceptions are decided before apps: a flow or name they match goes direct (or is
// blocked, for pinned apps with action "block").
type Exceptions struct {
	// Domains are exact names or "*.wildcards" that always go direct.
	Domains []string `json:"domains,omitempty" yaml:"domains,omitempty"`
	// Addresses are IPs, ranges or CIDRs that always go direct.
	Addresses []string `json:"addresses,omitempty" yaml:"addresses,omitempty"`
	// Pinned are certificate-pinned applications, matched on the identity of the
	// process that owns the flow.
	Pinned []PinnedApp `json:"pinned,omitempty" yaml:"pinned,omitempty"`
}

// PinnedApp is one certificate-pinned application exception.
type PinnedApp struct {
	Name string `json:"name" yaml:"name"`
	// OS is one of windows, darwin, linux, android, ios.
	OS string `json:"os" yaml:"os"`
	// Field is what Pattern is matched against: "process" (process name),
	// "path" (executable path) or "appid" (bundle or package id).
	Field string `json:"field" yaml:"field"`
	// Pattern is a PCRE-style regular expression (lookarounds included).
	Pattern string `json:"pattern" yaml:"pattern"`
	// Action is "bypass" (default) or "block".
	Action string `json:"action,omitempty" yaml:"action,omitempty"`
}

// ClientConfig holds the switches that shape the agent's behaviour.
type ClientConfig struct {
	// StubRange is the prefix stub addresses come from; default 100.64.0.0/10.
	StubRange string `json:"stub_range,omitempty" yaml:"stub_range,omitempty"`
	// StubRangeFallbacks are the prefixes the agent takes stub addresses
	// from, in order, when StubRange is already routed to another interface
	// (another VPN owns it).
	StubRangeFallbacks []string `json:"stub_range_fallbacks,omitempty" yaml:"stub_range_fallbacks,omitempty"`
	// StubRange6 is the IPv6 prefix that AAAA answers for private names come
	// from, beside the A answers from StubRange; default fd7a:7a61:6774::/104
	// (a ULA prefix), "off" for none (AAAA queries of private names are then
	// answered NOERROR with no answer). It must be IPv6 with 2 to 24 host
	// bits; when StubRange is itself IPv6 it must be empty or "off".
	StubRange6 string `json:"stub_range6,omitempty" yaml:"stub_range6,omitempty"`
	// DNSTTL is the TTL of stub answers; default 30s.
	DNSTTL Duration `json:"dns_ttl,omitempty" yaml:"dns_ttl,omitempty"`
	// ConfigPoll is how often the agent polls the tenant for config; default 5m.
	ConfigPoll Duration `json:"config_poll,omitempty" yaml:"config_poll,omitempty"`
	// ProbeInterval is how often the agent measures the RTT through the PoP to
	// the publishers of its apps and re-selects the nearest; default 5m
	// (DefaultProbeInterval).
	ProbeInterval Duration `json:"probe_interval,omitempty" yaml:"probe_interval,omitempty"`
	// DTLS enables the L3E tunnel: the agent dials the gateway the tenant
	// names (AgentConfig.Gateway) and brings up a second TUN with the address,
	// routes and DNS the gateway pushes.
	DTLS bool `json:"dtls,omitempty" yaml:"dtls,omitempty"`
	// OnPremDetection, when set, says how the agent knows it sits on the
	// corporate network; on premises private-app steering stands aside.
	OnPremDetection *OnPremDetection `json:"onprem_detection,omitempty" yaml:"onprem_detection,omitempty"`
	// CaptiveCheck is the http URL that must answer 204 No Content when
	// nothing stands between the machine and the internet; any other answer
	// means a captive portal. Default DefaultCaptiveCheck; "off" turns the
	// check off.
	CaptiveCheck string `json:"captive_check,omitempty" yaml:"captive_check,omitempty"`
	// PreLogon would turn pre-logon on from the tenant. Not supported yet: a
	// config that sets it is refused (the prelogonuser= install parameter
	// turns pre-logon on).
	PreLogon bool `json:"prelogon,omitempty" yaml:"prelogon,omitempty"`
	// ReauthInterval (0 = off) and ReauthGrace drive periodic re-authentication.
	ReauthInterval Duration `json:"reauth_interval,omitempty" yaml:"reauth_interval,omitempty"`
	ReauthGrace    Duration `json:"reauth_grace,omitempty" yaml:"reauth_grace,omitempty"`
	// UDPIdleTimeout closes a tunnelled UDP flow (one per 4-tuple) after
	// this long without a datagram either way; default 2m.
	UDPIdleTimeout Duration `json:"udp_idle_timeout,omitempty" yaml:"udp_idle_timeout,omitempty"`
	// FailMode is "open" (default: private names answered from upstream when the
	// tunnel is down, so the OS's resolvers, public ones included, see them),
	// "close" (private names keep their stubs and their flows are refused
	// while the tunnel is down: nothing leaks, not even the names) or "local"
	// (while the tunnel is down private names go only to the OS's resolvers
	// on the local network — loopback, private and link-local addresses — so
	// an app reachable there still works, and fail when there is none).
	FailMode string `json:"fail_mode,omitempty" yaml:"fail_mode,omitempty"`
	// TamperPassword, when set, is the hash of the password an
	// administrator must give to turn steering off (tamper.go).
	TamperPassword string `json:"tamper_password,omitempty" yaml:"tamper_password,omitempty"`
	// TamperOverrideKey, when set, is the public key that signs one-time
	// override codes, each turning steering off on one device until its
	// expiry (override.go).
	TamperOverrideKey string `json:"tamper_override_key,omitempty" yaml:"tamper_override_key,omitempty"`
}

// Config is one complete steering configuration for one user on one device: the
// apps they are steered to, the exceptions, and the client switches.
type Config struct {
	Apps       []App        `json:"apps" yaml:"apps"`
	Exceptions Exceptions   `json:"exceptions,omitempty" yaml:"exceptions,omitempty"`
	Client     ClientConfig `json:"client,omitempty" yaml:"client,omitempty"`
}
