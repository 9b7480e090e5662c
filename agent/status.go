package agent

import (
	"sort"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// Status reports the agent's state. It is safe to call at any time; the
// details of the parts are shown while they are in force (running or
// suspended).
func (a *Agent) Status() ctlapi.Status {
	a.mu.Lock()
	st := ctlapi.Status{State: a.state, Since: a.since, Error: a.why}
	p := a.parts
	a.mu.Unlock()
	st.Log = a.logStatus()
	st.Capture = a.capture.status()
	st.UplinkCapture = a.uplink.status()
	if p == nil || (st.State != ctlapi.StateRunning && st.State != ctlapi.StateSuspended) {
		return st
	}
	p.status(&st)
	return st
}

func (p *parts) status(st *ctlapi.Status) {
	id := p.ident.Load().id
	st.Enrollment = ctlapi.EnrollmentStatus{Tenant: id.Tenant, User: id.User, DeviceID: id.DeviceID, TenantURL: id.TenantURL,
		CertExpires: id.Expires(), As: p.who.kind}
	_, eff, settings := p.a.settings.get()
	st.Settings = pendingSettings(settings, p.who.enrollParams(eff), p.enrolledWith)
	st.Config = p.configStatus()
	ts := p.l7.Status()
	st.Tunnel = ctlapi.TunnelStatus{State: string(ts.State), PoP: ts.Addr, Since: ts.Since, LastError: ts.LastError, Streams: ts.Streams,
		Attempts: ts.Attempts, PoPs: popStatuses(p.l7.PoPs())}
	snap := p.snap.Load()
	sw := p.a.steering.status(p.tenantSnap.Load())
	st.Steering = &sw
	st.TUN = ctlapi.TUNStatus{Name: p.tunName, Addr: p.tunIP, Routes: p.routerConfig(snap).Routes, MTU: p.stack.MTU()}
	if v6 := p.stubs.v6; v6 != nil {
		st.TUN.Addr6 = agentAddr(v6.Prefix())
	}
	ds := p.dns.Stats()
	st.DNS = ctlapi.DNSStatus{Mode: p.dnsCfg.Mode(), Listen: p.dns.Addrs(), Upstreams: *p.upstreams.Load(),
		Counters: ctlapi.DNSCounters{Queries: ds.Queries, Local: ds.Local, Forwarded: ds.Forwarded,
			CacheHits: ds.CacheHits, Delegated: ds.Delegated, UpstreamErrors: ds.UpstreamErrors,
			ServFail: ds.ServFail, Saturated: ds.Saturated, Malformed: ds.Malformed,
			SocketsEvicted: ds.UpstreamSocketsEvicted}}
	ns := p.stack.Stats()
	st.Flows = ctlapi.FlowStatus{
		Steered: p.flows.steered.Load(), Refused: p.flows.refused.Load(), NotCarried: p.flows.notCarried.Load(),
		NotSteered: p.flows.notSteered.Load(), Blocked: p.flows.blocked.Load(),
		PacketsIn: ns.PacketsIn, PacketsOut: ns.PacketsOut, PingsDropped: ns.EchoDropped, SYNDropped: ns.SYNDropped,
		Pings:   p.echo.status(),
		UDPOpen: ns.UDPOpen, UDPExpired: ns.UDPExpired, UDPEvicted: ns.UDPEvicted, UDPDropped: ns.UDPDropped,
	}
	st.L3E = p.l3eStatus()
	st.Reauth = ctlapi.ReauthStatus{Phase: p.reauthPhase(time.Now()), LastSignIn: p.lastSignIn()}
	if iv := snap.Client().ReauthInterval.D(); iv > 0 {
		st.Reauth.Due = st.Reauth.LastSignIn.Add(iv)
	}
	var pubs map[string][]ctlapi.PublisherStatus
	st.Selection, pubs = p.selectionStatus()
	st.Apps = appStatuses(snap)
	for i := range st.Apps {
		st.Apps[i].Publishers = pubs[st.Apps[i].ID]
	}
	st.Network = p.onprem.status()
	p.captive.status(&st.Network)
	st.Network.StubRange, st.Network.StubRangeReason = snap.StubRange().String(), p.stubChoice.why
	for _, e := range p.stubs.Entries() {
		st.Stubs = append(st.Stubs, ctlapi.StubStatus{FQDN: e.FQDN, Addr: e.Addr})
	}
}

func (p *parts) configStatus() ctlapi.ConfigStatus {
	sc := p.synced.Load()
	return ctlapi.ConfigStatus{Source: sc.source, ETag: sc.etag, Fetched: sc.fetched}
}

func appStatuses(snap *steering.Snapshot) []ctlapi.AppStatus {
	out := make([]ctlapi.AppStatus, 0, snap.NumApps())
	for _, app := range snap.Apps() {
		out = append(out, ctlapi.AppStatus{ID: app.ID, Name: app.Name, Hosts: app.Hosts, TCP: app.TCP, UDP: app.UDP,
			Tunnel: app.Tunnel, NotCarried: steering.AppNotCarried(&app)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func popStatuses(pops []l7.PoPStatus) []ctlapi.PoPStatus {
	out := make([]ctlapi.PoPStatus, 0, len(pops))
	for _, pp := range pops {
		out = append(out, ctlapi.PoPStatus{Addr: pp.Addr, Connect: pp.Connect, Error: pp.LastError, Measured: pp.Measured, InUse: pp.InUse})
	}
	return out
}
