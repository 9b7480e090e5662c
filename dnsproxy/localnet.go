package dnsproxy

import (
	"net/netip"
	"sync/atomic"
)

// LocalResolver reports whether a resolver at addr is on the network the
// device sits on, or on the device itself: a loopback, link-local or private
// (RFC 1918, RFC 4193 unique local) address. Queries that Answer.Local keeps
// off other resolvers may go to these. The shared address space of carrier
// NAT (100.64.0.0/10, RFC 6598) is not local: it belongs to the ISP, and the
// agent's own stub range is carved from it.
//
// Such a resolver may still forward what it cannot answer: a home router
// passes names on to the ISP's resolver. Local keeps names off public
// resolvers that the device would ask directly; it cannot see past the
// local one.
func LocalResolver(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsLinkLocalUnicast() || addr.IsPrivate()
}

// localOnly returns the upstreams of u on the local network, sharing u's
// sockets. What was learnt about their health starts afresh.
func (u *upstreamSet) localOnly() *upstreamSet {
	l := &upstreamSet{}
	for i, a := range u.addrs {
		if LocalResolver(a.Addr()) {
			l.addrs = append(l.addrs, a)
			l.pools = append(l.pools, u.pools[i])
		}
	}
	l.downUntil = make([]atomic.Int64, len(l.addrs))
	return l
}
