package agent

import (
	"github.com/ztagent/ztagent/agent/ctlapi"
	"sort"
	"time"

	"github.com/ztagent/ztagent/steering"
)

// Status reports the agent's state. It is safe to call at any time.
func (a *Agent) Status() ctlapi.Status {
	a.mu.Lock()
	st := ctlapi.Status{State: a.state, Since: a.since}
	running := a.state == ctlapi.StateRunning
	a.mu.Unlock()
	if !running {
		return st
	}
	id := a.ident.Load().id
	st.Enrollment = ctlapi.EnrollmentStatus{Tenant: id.Tenant, User: id.User, DeviceID: id.DeviceID, TenantURL: id.TenantURL,
		CertExpires: id.Expires(), As: a.whom().kind}
	for _, s := range a.settings() {
		st.Settings = append(st.Settings, ctlapi.Setting{Key: s.Key, Value: s.Value, Source: s.Source})
	}
	if sc := a.synced.Load(); sc != nil {
		st.Config = ctlapi.ConfigStatus{Source: sc.source, ETag: sc.etag, Fetched: sc.fetched}
	}
	ts := a.l7.Status()
	st.Tunnel = ctlapi.TunnelStatus{State: string(ts.State), PoP: ts.Addr, Since: ts.Since, LastError: ts.LastError, Streams: ts.Streams}
	snap := a.snap.Load()
	st.TUN = ctlapi.TUNStatus{Name: a.cfg.TUNName, Addr: a.tunIP, Routes: a.routerConfig(snap).Routes}
	a.upMu.Lock()
	st.DNS = ctlapi.DNSStatus{Mode: a.dnsCfg.Mode(), Listen: a.dns.Addrs(), Upstreams: a.upstreams}
	a.upMu.Unlock()
	ns := a.stack.Stats()
	st.Flows = ctlapi.FlowStatus{
		Steered: a.flows.steered.Load(), Refused: a.flows.refused.Load(),
		NotSteered: a.flows.notSteered.Load(), Blocked: a.flows.blocked.Load(),
		PacketsIn: ns.PacketsIn, PacketsOut: ns.PacketsOut,
	}
	st.Reauth = ctlapi.ReauthStatus{Phase: a.reauthPhase(time.Now()), LastSignIn: a.lastSignIn()}
	if iv := snap.Config().Client.ReauthInterval.D(); iv > 0 {
		st.Reauth.Due = st.Reauth.LastSignIn.Add(iv)
	}
	st.Apps = appStatuses(snap)
	for _, e := range a.stubs.Entries() {
		st.Stubs = append(st.Stubs, ctlapi.StubStatus{FQDN: e.FQDN, Addr: e.Addr})
	}
	return st
}

func appStatuses(snap *steering.Snapshot) []ctlapi.AppStatus {
	apps := snap.Config().Apps
	out := make([]ctlapi.AppStatus, 0, len(apps))
	for _, app := range apps {
		out = append(out, ctlapi.AppStatus{ID: app.ID, Name: app.Name, Hosts: app.Hosts, TCP: app.TCP, UDP: app.UDP, Tunnel: app.Tunnel})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
