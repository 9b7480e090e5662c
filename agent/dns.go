package agent

import (
	"net/netip"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/dnsproxy"
	"github.com/ztagent/ztagent/steering"
)

// dnsPolicy answers the DNS proxy's questions from the live steering snapshot
// and the stub pool.
type dnsPolicy struct{ p *parts }

func (dp dnsPolicy) Lookup(name string) (dnsproxy.Answer, bool) {
	p := dp.p
	if p.onprem.onPrem() {
		// On premises the corporate DNS, among the OS's resolvers, answers.
		return dnsproxy.Answer{}, false
	}
	snap := p.snap.Load()
	d := snap.MatchName(name)
	if !d.Steered() || d.App == nil {
		if p.l3eOwns(name) {
			// The corporate suffix of the L3E template: its DNS servers,
			// through the L3E tunnel (a name the agent steers wins).
			return dnsproxy.Answer{Upstream: l3eResolver{p.l3e}}, true
		}
		return dnsproxy.Answer{}, false
	}
	if d.Action == steering.L3E {
		// The agent cannot carry any flow of the app yet (L3E). Its name
		// gets a stub all the same, whatever the fail mode:
		// resolved by the OS, its flows would go direct, unencrypted; to a
		// stub they reach the agent and are refused with the reason.
		return p.stubAnswer(snap, name)
	}
	if !p.tunnelUp() {
		switch snap.Client().FailMode {
		case steering.FailOpen:
			// While the tunnel is down private names resolve through the
			// OS's resolvers, so whatever is reachable directly (on the
			// corporate network, say) still works.
			return dnsproxy.Answer{}, false
		case steering.FailLocal:
			// The same, but only through resolvers on the local network:
			// a public resolver never sees the name.
			return dnsproxy.Answer{Local: true}, true
		}
		// Fail-close keeps answering stubs, whose flows are then reset at
		// once rather than leak.
	}
	if d.App.PublisherDNS {
		// The real address, from a publisher's corporate resolver.
		return dnsproxy.Answer{Upstream: pubResolver{p: p, appID: d.App.ID}}, true
	}
	return p.stubAnswer(snap, name)
}

// stubAnswer answers name with its stub addresses: one from the stub range
// and one from the IPv6 stub range when there is one. An exhausted IPv6
// range leaves the name without an AAAA answer rather than failing it.
func (p *parts) stubAnswer(snap *steering.Snapshot, name string) (dnsproxy.Answer, bool) {
	now := time.Now()
	addr, err := p.stubs.v4.Assign(name, now)
	if err != nil {
		p.log.Warn("no stub address", zap.String("name", name), zap.Error(err))
		return dnsproxy.Answer{}, false
	}
	a := dnsproxy.Answer{Addr: addr, TTL: snap.Client().DNSTTL.D()}
	if v6 := p.stubs.v6; v6 != nil {
		if a.Addr6, err = v6.Assign(name, now); err != nil {
			p.log.Warn("no IPv6 stub address", zap.String("name", name), zap.Error(err))
		}
	}
	return a, true
}

// tunnelUp reports whether the L7 tunnel is connected.
func (p *parts) tunnelUp() bool {
	return p.l7.Connected()
}

func (dp dnsPolicy) Reverse(addr netip.Addr) (string, bool) {
	return dp.p.stubs.Lookup(addr)
}

// bypassDNS reports whether the process that sent a DNS query is bypassed by
// a pinned-app exception: its queries for private names then get the real
// answer from the upstream resolvers, so its flows go direct. (A "block"
// exception keeps the stub, so that its flows reach the agent and are
// refused.)
func (p *parts) bypassDNS(client netip.AddrPort) bool {
	snap := p.snap.Load()
	if !snap.HasPinned(runtime.GOOS) {
		return false
	}
	now := time.Now()
	if v, ok := p.bypassCache.Load(client); ok {
		if e := v.(bypassEntry); now.Before(e.expires) {
			return e.bypass
		}
	}
	bypass := p.lookupBypass(snap, client)
	p.bypassCache.Store(client, bypassEntry{bypass: bypass, expires: now.Add(bypassCacheTTL)})
	return bypass
}

// bypassCacheTTL is how long the decision for one client socket is reused.
// Resolvers that keep a socket open (systemd-resolved, browsers' own DNS
// clients, benchmarks) then pay for one process lookup, not one per query; a
// socket reused by another process within the TTL inherits the decision for
// at most that long.
const bypassCacheTTL = 2 * time.Second

type bypassEntry struct {
	bypass  bool
	expires time.Time
}

// sweepBypassCache drops expired decisions.
func (p *parts) sweepBypassCache(now time.Time) {
	p.bypassCache.Range(func(k, v any) bool {
		if now.After(v.(bypassEntry).expires) {
			p.bypassCache.Delete(k)
		}
		return true
	})
}

func (p *parts) lookupBypass(snap *steering.Snapshot, client netip.AddrPort) bool {
	// The proxy serves UDP and TCP; the client's socket is one or the other.
	o, err := p.a.cfg.Owners.Lookup("udp", client, netip.AddrPort{})
	if err != nil {
		if o, err = p.a.cfg.Owners.Lookup("tcp", client, netip.AddrPort{}); err != nil {
			return false
		}
	}
	d, ok := snap.MatchPinned(steering.Flow{OS: runtime.GOOS, Process: o.Process, Path: o.Path, AppID: o.AppID})
	return ok && d.Action == steering.Direct
}
