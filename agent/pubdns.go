package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Publisher DNS: names of apps marked publisher_dns resolve to their real
// addresses through a publisher (DNS over HTTPS inside the L7 tunnel). The
// agent remembers which name each such address came from, so a flow to it is
// steered by name (the PoP and publisher see the FQDN, as with stubs), and
// routes the address into the TUN while it is in use.

// pubAddrLife is how long a publisher-resolved address stays routed after its
// last answer or flow, at least: applications cache answers beyond their TTL.
const pubAddrLife = 10 * time.Minute

type pubEntry struct {
	name    string
	expires time.Time
}

// pubAddrs is the set of publisher-resolved addresses. Writers hold mu and
// publish a fresh read-only view; the data path reads the view without locks.
type pubAddrs struct {
	mu      sync.Mutex
	entries map[netip.Addr]pubEntry
	view    atomic.Pointer[map[netip.Addr]string]
}

// name returns the FQDN addr was resolved from, if it is a publisher address.
func (p *pubAddrs) name(addr netip.Addr) (string, bool) {
	v := p.view.Load()
	if v == nil {
		return "", false
	}
	n, ok := (*v)[addr]
	return n, ok
}

// add records addrs for name until now+life; it reports whether the set of
// addresses changed (so routes must be updated).
func (p *pubAddrs) add(name string, addrs []netip.Addr, expires time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.entries == nil {
		p.entries = map[netip.Addr]pubEntry{}
	}
	changed := false
	for _, a := range addrs {
		e, ok := p.entries[a]
		if !ok || e.name != name {
			changed = true
		}
		if ok && e.expires.After(expires) {
			expires = e.expires
		}
		p.entries[a] = pubEntry{name: name, expires: expires}
	}
	if changed {
		p.publishLocked()
	}
	return changed
}

// touch extends addr's life because a flow used it.
func (p *pubAddrs) touch(addr netip.Addr, expires time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.entries[addr]; ok && e.expires.Before(expires) {
		e.expires = expires
		p.entries[addr] = e
	}
}

// expire drops addresses past their life; it reports whether any went.
func (p *pubAddrs) expire(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for a, e := range p.entries {
		if now.After(e.expires) {
			delete(p.entries, a)
			changed = true
		}
	}
	if changed {
		p.publishLocked()
	}
	return changed
}

func (p *pubAddrs) publishLocked() {
	v := make(map[netip.Addr]string, len(p.entries))
	for a, e := range p.entries {
		v[a] = e.name
	}
	p.view.Store(&v)
}

// prefixes lists the addresses as host prefixes, sorted, for routes.
func (p *pubAddrs) prefixes() []netip.Prefix {
	v := p.view.Load()
	if v == nil {
		return nil
	}
	out := make([]netip.Prefix, 0, len(*v))
	for a := range *v {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out
}

// pubResolver is the dnsproxy.Upstream of one publisher-DNS app.
type pubResolver struct {
	p     *parts
	appID string
}

// Exchange resolves query through a publisher of the app, then routes the
// answer's addresses into the TUN before the client can connect to them.
func (r pubResolver) Exchange(ctx context.Context, query []byte) ([]byte, error) {
	resp, err := r.p.l7.ResolveDNS(ctx, r.appID, query)
	if err != nil {
		r.p.sel.staleOnRefusal(err)
		return nil, err
	}
	var m dns.Msg
	if err := m.Unpack(resp); err != nil {
		return nil, fmt.Errorf("publisher answer for app %s: %w", r.appID, err)
	}
	if len(m.Question) != 1 {
		return resp, nil
	}
	name := canonicalName(m.Question[0].Name)
	var addrs []netip.Addr
	var ttl uint32
	for _, rr := range m.Answer {
		var ip netip.Addr
		switch rr := rr.(type) {
		case *dns.A:
			ip, _ = netip.AddrFromSlice(rr.A)
		case *dns.AAAA:
			ip, _ = netip.AddrFromSlice(rr.AAAA)
		default:
			continue
		}
		addrs = append(addrs, ip.Unmap())
		ttl = max(ttl, rr.Header().Ttl)
	}
	if len(addrs) == 0 {
		return resp, nil
	}
	life := max(time.Duration(ttl)*time.Second, pubAddrLife)
	if r.p.pub.add(name, addrs, time.Now().Add(life)) {
		r.p.updateRoutes()
	}
	return resp, nil
}

// pubSweeper drops publisher addresses that are no longer in use, and their
// routes.
func (p *parts) pubSweeper(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if p.pub.expire(now) {
				p.updateRoutes()
			}
		}
	}
}

// canonicalName lower-cases a DNS name and drops its trailing dot.
func canonicalName(s string) string {
	return strings.TrimSuffix(dns.CanonicalName(s), ".")
}
