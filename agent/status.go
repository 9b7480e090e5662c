package agent

import (
	"net/netip"
	"sort"
	"time"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/steering"
)

// Status is what `ztdiag status` shows. Its JSON form is a public interface
// for scripts: add fields, never rename them.
type Status struct {
	State      State            `json:"state"`
	Since      time.Time        `json:"since"`
	Enrollment EnrollmentStatus `json:"enrollment"`
	// Settings are the effective install settings and where each came from
	// (MDM, install parameters, default). Secrets are redacted.
	Settings []enroll.Setting `json:"settings"`
	Config   ConfigStatus     `json:"config"`
	Tunnel   TunnelStatus     `json:"tunnel"`
	TUN      TUNStatus        `json:"tun"`
	DNS      DNSStatus        `json:"dns"`
	Reauth   ReauthStatus     `json:"reauth"`
	Flows    FlowStatus       `json:"flows"`
	Apps     []AppStatus      `json:"apps"`
	Stubs    []StubStatus     `json:"stubs"`
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
}

// TUNStatus is the TUN device and its routes.
type TUNStatus struct {
	Name   string         `json:"name"`
	Addr   netip.Addr     `json:"addr"`
	Routes []netip.Prefix `json:"routes"`
}

// DNSStatus is the DNS proxy and the OS resolver configuration.
type DNSStatus struct {
	Mode      string           `json:"mode"`
	Listen    []netip.AddrPort `json:"listen"`
	Upstreams []netip.AddrPort `json:"upstreams"`
}

// ReauthStatus is the periodic re-authentication cycle.
type ReauthStatus struct {
	Phase      ReauthPhase `json:"phase"`
	LastSignIn time.Time   `json:"last_sign_in"`
	// Due is when the next sign-in is due (zero when re-authentication is off).
	Due time.Time `json:"due,omitempty"`
}

// FlowStatus counts the flows the TUN device delivered, by outcome, since start.
type FlowStatus struct {
	Steered    int64 `json:"steered"`     // opened through the tunnel
	Refused    int64 `json:"refused"`     // steered, but the PoP or the path refused
	NotSteered int64 `json:"not_steered"` // matched no app (e.g. a port outside it): sent direct, or reset for a stub
	Blocked    int64 `json:"blocked"`     // blocked by an exception
	PacketsIn  int64 `json:"packets_in"`  // packets read from the TUN device
	PacketsOut int64 `json:"packets_out"` // packets written to it
}

// AppStatus is one synced private app.
type AppStatus struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Hosts  []string `json:"hosts"`
	TCP    string   `json:"tcp,omitempty"`
	UDP    string   `json:"udp,omitempty"`
	Tunnel string   `json:"tunnel"`
}

// StubStatus is one FQDN → stub address assignment.
type StubStatus struct {
	FQDN string     `json:"fqdn"`
	Addr netip.Addr `json:"addr"`
}

// Status reports the agent's state. It is safe to call at any time.
func (a *Agent) Status() Status {
	a.mu.Lock()
	st := Status{State: a.state, Since: a.since}
	running := a.state == StateRunning
	a.mu.Unlock()
	if !running {
		return st
	}
	id := a.ident.Load().id
	st.Enrollment = EnrollmentStatus{Tenant: id.Tenant, User: id.User, DeviceID: id.DeviceID, TenantURL: id.TenantURL,
		CertExpires: id.Expires(), As: a.whom().kind}
	st.Settings = a.settings()
	if sc := a.synced.Load(); sc != nil {
		st.Config = ConfigStatus{Source: sc.source, ETag: sc.etag, Fetched: sc.fetched}
	}
	ts := a.l7.Status()
	st.Tunnel = TunnelStatus{State: string(ts.State), PoP: ts.Addr, Since: ts.Since, LastError: ts.LastError, Streams: ts.Streams}
	snap := a.snap.Load()
	st.TUN = TUNStatus{Name: a.cfg.TUNName, Addr: a.tunIP, Routes: a.routerConfig(snap).Routes}
	a.upMu.Lock()
	st.DNS = DNSStatus{Mode: a.dnsCfg.Mode(), Listen: a.dns.Addrs(), Upstreams: a.upstreams}
	a.upMu.Unlock()
	ns := a.stack.Stats()
	st.Flows = FlowStatus{
		Steered: a.flows.steered.Load(), Refused: a.flows.refused.Load(),
		NotSteered: a.flows.notSteered.Load(), Blocked: a.flows.blocked.Load(),
		PacketsIn: ns.PacketsIn, PacketsOut: ns.PacketsOut,
	}
	st.Reauth = ReauthStatus{Phase: a.reauthPhase(time.Now()), LastSignIn: a.lastSignIn()}
	if iv := snap.Config().Client.ReauthInterval.D(); iv > 0 {
		st.Reauth.Due = st.Reauth.LastSignIn.Add(iv)
	}
	st.Apps = appStatuses(snap)
	for _, e := range a.stubs.Entries() {
		st.Stubs = append(st.Stubs, StubStatus{FQDN: e.FQDN, Addr: e.Addr})
	}
	return st
}

func appStatuses(snap *steering.Snapshot) []AppStatus {
	apps := snap.Config().Apps
	out := make([]AppStatus, 0, len(apps))
	for _, app := range apps {
		out = append(out, AppStatus{ID: app.ID, Name: app.Name, Hosts: app.Hosts, TCP: app.TCP, UDP: app.UDP, Tunnel: app.Tunnel})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
