// Package ctlapi is the agent's local control API as both of its ends see it:
// the JSON wire types (status, match, re-enrollment), the client that ztdiag
// uses over the control socket, and Explain, the pure rendering of a steering
// decision that the daemon's match endpoint and ztdiag's offline match share.
// It is a leaf: it imports steering and platform but no part of the daemon,
// so ztdiag links neither the agent nor gVisor (the way Tailscale's CLI and
// daemon share ipn/ipnstate).
package ctlapi

import (
	"net/netip"
	"time"
)

// The control API's endpoints. Reads are open to every local user; the others
// need root/administrator, checked from the socket peer's credentials.
const (
	PathStatus = "/v1/status" // GET: Status
	PathMatch  = "/v1/match"  // POST MatchRequest: MatchResponse
	PathEnroll = "/v1/enroll" // POST ReenrollRequest: EnrollmentStatus (root)
	PathSync   = "/v1/sync"   // POST: ConfigStatus (root)
	PathLog    = "/v1/log"    // GET: LogStatus; POST LogRequest: LogStatus (root)
	// POST SteeringRequest: SteeringStatus (root; the tenant's password to
	// turn steering off when it sets one)
	PathSteering = "/v1/steering"
)

// State is where the agent is in its lifecycle.
type State string

// The agent's states; the agent package documents the transitions.
const (
	StateStopped  State = "stopped"
	StateStarting State = "starting"
	StateRunning  State = "running"
	// StateSuspended is running with private access off: the
	// re-authentication grace period ended without a sign-in. The L7 tunnel
	// is closed and steered flows are refused until the user signs in.
	StateSuspended State = "suspended"
	StateStopping  State = "stopping"
)

// Status is what `ztdiag status` shows. Its JSON form is a public interface
// for scripts: add fields, never rename them.
type Status struct {
	State State     `json:"state"`
	Since time.Time `json:"since"`
	// Error is why the agent is not running when it should be (a restart
	// that failed and is retried), or why it is suspended.
	Error      string           `json:"error,omitempty"`
	Enrollment EnrollmentStatus `json:"enrollment"`
	// Settings are the effective install settings and where each came from
	// (MDM, install parameters, default). Secrets are redacted.
	Settings []Setting    `json:"settings"`
	Config   ConfigStatus `json:"config"`
	Tunnel   TunnelStatus `json:"tunnel"`
	// L3E is the L3E tunnel; nil when the config does not turn it on.
	L3E    *L3EStatus   `json:"l3e,omitempty"`
	TUN    TUNStatus    `json:"tun"`
	DNS    DNSStatus    `json:"dns"`
	Reauth ReauthStatus `json:"reauth"`
	Flows  FlowStatus   `json:"flows"`
	// Selection is publisher selection by RTT; each app's publishers are in
	// Apps.
	Selection SelectionStatus `json:"selection"`
	Apps      []AppStatus     `json:"apps"`
	Stubs     []StubStatus    `json:"stubs"`
	// Log is the agent's log: level and file; nil when the agent was
	// started without log control (tests).
	Log *LogStatus `json:"log,omitempty"`
	// Steering is the steering switch (`ztdiag -t`) and its rule; nil
	// unless the agent is running or suspended.
	Steering *SteeringStatus `json:"steering,omitempty"`
	// Network is what the agent found out about the network it is on.
	Network NetworkStatus `json:"network"`
	// Capture is the TUN capture that runs (`ztdiag -c`), or the last one;
	// nil when none was started since the agent started.
	Capture *CaptureStatus `json:"capture,omitempty"`
	// UplinkCapture is the uplink capture that runs (`ztdiag -p`), or the
	// last one; nil when none was started.
	UplinkCapture *CaptureStatus `json:"uplink_capture,omitempty"`
}

// NetworkStatus is the outcome of on-premises detection
// (client.onprem_detection).
type NetworkStatus struct {
	// OnPrem: the corporate network was found, so private-app steering
	// stands aside (private names resolve through the OS's resolvers, flows
	// go direct).
	OnPrem bool `json:"onprem"`
	// OnPremReason says what the last check found; "" when detection is off.
	OnPremReason  string    `json:"onprem_reason,omitempty"`
	OnPremChecked time.Time `json:"onprem_checked,omitempty"`
	// Captive: a captive portal stands between the machine and the PoP
	// (client.captive_check did not answer 204); the tunnel waits for it.
	Captive bool `json:"captive"`
	// CaptiveReason says what the last check found; it is checked while
	// the tunnel is down.
	CaptiveReason string `json:"captive_reason,omitempty"`
	// StubRange is the prefix stub addresses come from; StubRangeReason,
	// when set, why it is not the configured one (another interface routes
	// that: client.stub_range_fallbacks).
	StubRange       string `json:"stub_range,omitempty"`
	StubRangeReason string `json:"stub_range_reason,omitempty"`
}

// Setting is one effective install setting.
type Setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
	// Pending, when set, says that the value differs from the one the
	// running enrollment was made with and when it will apply.
	Pending string `json:"pending,omitempty"`
}

// EnrollmentStatus is who this device is enrolled as.
type EnrollmentStatus struct {
	Tenant    string `json:"tenant"`
	User      string `json:"user"`
	DeviceID  string `json:"device_id"`
	TenantURL string `json:"tenant_url"`
	// CertExpires is when the device certificate expires; the agent renews
	// it well before.
	CertExpires time.Time `json:"cert_expires"`
	// As is whom the agent runs as: machine, user (per-user config) or
	// prelogon.
	As string `json:"as,omitempty"`
}

// ConfigStatus is the config in force.
type ConfigStatus struct {
	// Source is "tenant", "cache", or "none" when neither gave a config this
	// agent accepts and it steers nothing (the log says why).
	Source  string    `json:"source"`
	ETag    string    `json:"etag"`
	Fetched time.Time `json:"fetched"`
}

// TunnelStatus is the L7 tunnel to the PoP.
type TunnelStatus struct {
	State     string    `json:"state"`
	PoP       string    `json:"pop"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	Streams   int       `json:"streams"`
	// Attempts counts connection attempts since the agent started, made or
	// failed: while offline it grows with the backoff.
	Attempts uint64 `json:"attempts"`
	// PoPs are the PoPs the agent may use, with the time its last connect
	// to each took; one of them is in use while connected.
	PoPs []PoPStatus `json:"pops,omitempty"`
}

// PoPStatus is one PoP the agent may use.
type PoPStatus struct {
	Addr string `json:"addr"`
	// Connect is how long the last TCP connect and TLS handshake took (about
	// two round trips); 0 when it failed (Error) or was not tried yet.
	Connect  time.Duration `json:"connect_ns"`
	Error    string        `json:"error,omitempty"`
	Measured time.Time     `json:"measured"`
	InUse    bool          `json:"in_use"`
}

// SelectionStatus is publisher selection by RTT.
type SelectionStatus struct {
	Probed   time.Time `json:"probed"`   // when the last round ended; zero before the first
	Interval string    `json:"interval"` // client.probe_interval in force
	// ProbeFailures counts probes answered with garbage, not answered in
	// time or refused (but for "publisher not online"), since the start.
	ProbeFailures int64 `json:"probe_failures"`
}

// PublisherStatus is one publisher of an app, as the last probe round saw it.
type PublisherStatus struct {
	Name string        `json:"name"`
	RTT  time.Duration `json:"rtt_ns"` // through the PoP; 0 when unreachable
	// Bucket is the RTT bucket (steering.RTTBuckets), e.g. "5-10ms"; ""
	// when unreachable.
	Bucket   string `json:"bucket,omitempty"`
	Selected bool   `json:"selected"` // the PoP uses it (the first online selected one)
	Error    string `json:"error,omitempty"`
}

// TUNStatus is the TUN device and its routes.
type TUNStatus struct {
	Name string     `json:"name"`
	Addr netip.Addr `json:"addr"`
	// Addr6 is the TUN's address in the IPv6 stub range; absent when there
	// are no IPv6 stubs (stub_range6 off, or the OS refused IPv6).
	Addr6  netip.Addr     `json:"addr6,omitzero"`
	Routes []netip.Prefix `json:"routes"`
	// MTU is the device's: the uplink's to the PoP, or the --mtu flag's.
	MTU int `json:"mtu,omitempty"`
}

// DNSStatus is the DNS proxy and the OS resolver configuration.
type DNSStatus struct {
	Mode      string           `json:"mode"`
	Listen    []netip.AddrPort `json:"listen"`
	Upstreams []netip.AddrPort `json:"upstreams"`
	Counters  DNSCounters      `json:"counters"`
}

// DNSCounters count what the DNS proxy did since it started.
type DNSCounters struct {
	Queries        uint64 `json:"queries"`         // received (UDP packets and TCP messages)
	Local          uint64 `json:"local"`           // answered from the policy (stubs, NODATA, PTR)
	Forwarded      uint64 `json:"forwarded"`       // answered by an upstream
	CacheHits      uint64 `json:"cache_hits"`      // forwarded names answered from the cache
	Delegated      uint64 `json:"delegated"`       // answered through a publisher (publisher DNS)
	UpstreamErrors uint64 `json:"upstream_errors"` // upstream attempts that failed or timed out
	ServFail       uint64 `json:"servfail"`        // SERVFAIL the agent answered
	Saturated      uint64 `json:"saturated"`       // refused: too many forwards in flight
	Malformed      uint64 `json:"malformed"`       // answered FORMERR, BADVERS or NOTIMP, or dropped
	// SocketsEvicted counts retired upstream sockets closed before their
	// queries were answered, too many lingering.
	SocketsEvicted uint64 `json:"upstream_sockets_evicted"`
}

// ReauthPhase is where a principal is in its re-authentication cycle.
type ReauthPhase string

// Re-authentication phases.
const (
	ReauthOff     ReauthPhase = "off"     // no reauth_interval
	ReauthOK      ReauthPhase = "ok"      // signed in recently enough
	ReauthDue     ReauthPhase = "due"     // interval passed: in the grace period
	ReauthExpired ReauthPhase = "expired" // grace passed: the agent is suspended
)

// ReauthStatus is the periodic re-authentication cycle.
type ReauthStatus struct {
	Phase      ReauthPhase `json:"phase"`
	LastSignIn time.Time   `json:"last_sign_in"`
	// Due is when the next sign-in is due (zero when re-authentication is off).
	Due time.Time `json:"due,omitempty"`
}

// FlowStatus counts the flows the TUN device delivered, by outcome, since the
// last start.
type FlowStatus struct {
	Steered    int64 `json:"steered"`     // opened through the tunnel
	Refused    int64 `json:"refused"`     // steered, but the PoP or the path refused, or access is suspended
	NotCarried int64 `json:"not_carried"` // steered through a tunnel or over a protocol the agent cannot carry yet: refused
	NotSteered int64 `json:"not_steered"` // matched no app (e.g. a port outside it): sent direct, or refused for a stub
	Blocked    int64 `json:"blocked"`     // blocked by an exception
	PacketsIn  int64 `json:"packets_in"`  // packets read from the TUN device
	PacketsOut int64 `json:"packets_out"` // packets written to it
	// PingsDropped counts ICMP echo requests into the TUN device that the
	// agent could not read (fragmented, bad checksum), dropped unanswered.
	PingsDropped int64 `json:"pings_dropped"`
	// Pings counts the echo requests the agent read, by outcome.
	Pings PingStatus `json:"pings"`
	// SYNDropped counts connection attempts dropped because too many were
	// being opened at once (the client retransmits its SYN).
	SYNDropped int64 `json:"syn_dropped"`
	// UDP flows (one per 4-tuple): open now; closed after
	// client.udp_idle_timeout without a datagram; closed because the flow
	// table was full (the flow idle longest makes room for a new one).
	UDPOpen    int64 `json:"udp_open"`
	UDPExpired int64 `json:"udp_expired"`
	UDPEvicted int64 `json:"udp_evicted"`
	// UDPDropped counts datagrams of open UDP flows dropped because a side
	// refused them (larger than it can send, say).
	UDPDropped int64 `json:"udp_dropped"`
}

// PingStatus counts ICMP echo requests (ping) to stub and app addresses. A
// reply comes only from the real host, through a publisher; the agent never
// answers one itself.
type PingStatus struct {
	Carried    int64 `json:"carried"`     // sent through the tunnel to a publisher
	Answered   int64 `json:"answered"`    // the host's real reply came back and was passed on
	Unanswered int64 `json:"unanswered"`  // no reply in time, or the tunnel was down: none given
	Refused    int64 `json:"refused"`     // denied by policy or an exception, or the host unreachable: ICMP unreachable given
	Limited    int64 `json:"limited"`     // over the rate or in-flight limit (or before the tunnel started): dropped
	NotSteered int64 `json:"not_steered"` // to an address no app steers through the L7 tunnel: dropped
}

// AppStatus is one synced private app.
type AppStatus struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Hosts  []string `json:"hosts"`
	TCP    string   `json:"tcp,omitempty"`
	UDP    string   `json:"udp,omitempty"`
	Tunnel string   `json:"tunnel"`
	// NotCarried says which of the app's flows the agent refuses because it
	// cannot carry them yet, and why; "" when every flow is carried.
	NotCarried string `json:"not_carried,omitempty"`
	// Publishers are the app's publishers with their RTT, nearest selected
	// first; empty before the first probe round.
	Publishers []PublisherStatus `json:"publishers,omitempty"`
}

// StubStatus is one FQDN → stub address assignment.
type StubStatus struct {
	FQDN string     `json:"fqdn"`
	Addr netip.Addr `json:"addr"`
}

// MatchRequest asks how the live config decides a flow (`ztdiag match`).
type MatchRequest struct {
	Host    string `json:"host"`
	Port    uint16 `json:"port"`
	Proto   string `json:"proto"`
	OS      string `json:"os,omitempty"`
	Process string `json:"process,omitempty"`
	Path    string `json:"path,omitempty"`
	AppID   string `json:"app_id,omitempty"`
}

// MatchResponse is the decision and why.
type MatchResponse struct {
	// Action is what the agent does: direct, l7, l3e, block, or refuse (the
	// config steers the flow, but through a tunnel or over a protocol the
	// agent cannot carry yet; Steering then names that tunnel).
	Action   string `json:"action"`
	Steering string `json:"steering,omitempty"`
	App      string `json:"app,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Reason   string `json:"reason"`
	Explain  string `json:"explain"`
}

// ActionRefuse is MatchResponse.Action for a steered flow the agent refuses
// because it cannot carry it yet.
const ActionRefuse = "refuse"

// ReenrollRequest is `ztdiag -e [key=value...]`: new install parameters
// (typically enrollauthtoken= and enrollencryptiontoken=) to enroll with
// again; none enrolls again with the settings in force.
type ReenrollRequest struct {
	Args []string `json:"args"`
}

// ErrorResponse is the body of every answer that is not 200 OK.
type ErrorResponse struct {
	Error string `json:"error"`
}

// L3EStatus is the L3E tunnel: its association with the gateway, the
// template in force and the counters.
type L3EStatus struct {
	State     string       `json:"state"` // connecting, up, backoff, stopped
	Gateway   string       `json:"gateway"`
	Since     time.Time    `json:"since"`
	LastError string       `json:"last_error,omitempty"`
	TUN       string       `json:"tun"`
	Address   netip.Prefix `json:"address,omitzero"`
	MTU       int          `json:"mtu,omitempty"`
	DNS       []netip.Addr `json:"dns,omitempty"`
	Suffix    string       `json:"suffix,omitempty"`
	Routes    []L3ERoute   `json:"routes,omitempty"`
	// DDNS is the device's name in the corporate DNS, its address, the
	// server and whether it is registered; "" when the template asks none.
	DDNS string `json:"ddns,omitempty"`

	PacketsIn        uint64            `json:"packets_in"`
	PacketsOut       uint64            `json:"packets_out"`
	BytesIn          uint64            `json:"bytes_in"`
	BytesOut         uint64            `json:"bytes_out"`
	Rekeys           uint64            `json:"rekeys"`
	Losses           uint64            `json:"losses"`
	TemplatesRefused uint64            `json:"templates_refused"`
	Drops            map[string]uint64 `json:"drops,omitempty"`
	Truncated        uint64            `json:"truncated"`
	Replayed         uint64            `json:"replayed"`
	Forged           uint64            `json:"forged"`
	WrongEpoch       uint64            `json:"wrong_epoch"`
}

// L3ERoute is one route the gateway pushed.
type L3ERoute struct {
	App    string       `json:"app,omitempty"`
	Prefix netip.Prefix `json:"prefix"`
	TCP    string       `json:"tcp,omitempty"`
	UDP    string       `json:"udp,omitempty"`
	ICMP   bool         `json:"icmp,omitempty"`
}

// LogStatus is the agent's log (`ztdiag -l`, `-m`).
type LogStatus struct {
	Level string `json:"level"`
	// File is the current log file, "" when the agent writes none (it
	// logs to standard error only); MaxMB is its size at which it rotates,
	// Keep how many rotated files are kept. A change by LogRequest lasts
	// until the agent restarts.
	File  string `json:"file,omitempty"`
	MaxMB int    `json:"max_mb,omitempty"`
	Keep  int    `json:"keep,omitempty"`
}

// LogRequest changes the agent's log at once: the level (debug, info,
// warn, error) and the log file's size in megabytes; an empty or zero
// field is left as it is.
type LogRequest struct {
	Level string `json:"level,omitempty"`
	MaxMB int    `json:"max_mb,omitempty"`
}

// SteeringStatus is the steering switch: on, or turned off by an
// administrator (`ztdiag -t disable`), and the rule for turning it off.
type SteeringStatus struct {
	On    bool      `json:"on"`
	Since time.Time `json:"since,omitempty"` // when it was turned off; zero while on
	// Until is when the override code it was turned off with expires and
	// the agent turns it on again; zero while on or off until enabled.
	Until time.Time `json:"until,omitzero"`
	Rule  string    `json:"rule"`
	// Password says the tenant sets a tamper-protection password, which
	// turning steering off needs.
	Password bool `json:"password"`
	// Codes says the tenant issues one-time override codes
	// (client.tamper_override_key), with which steering is off until the
	// code expires.
	Codes bool `json:"codes,omitempty"`
}

// SteeringRequest turns steering on or off; Password is the tenant's
// tamper-protection password, needed to turn it off when the tenant sets one;
// Code, instead, a one-time override code the tenant issued for this device.
type SteeringRequest struct {
	On       bool   `json:"on"`
	Password string `json:"password,omitempty"`
	Code     string `json:"code,omitempty"`
}
