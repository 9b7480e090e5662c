package dnsproxy

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// handle answers query b from client on the general path, which takes any
// query: it checks it as miekg/dns's server would (drops responses and runts,
// answers FORMERR or NOTIMP what cannot be a query), answers private names
// (unless the client bypasses the agent) and cached forwarded names, and
// otherwise returns the forwarding to do. It returns nil and nil when
// nothing is to be sent.
func (s *Server) handle(b []byte, client netip.AddrPort, tcp, bypassed bool) ([]byte, *forwarding) {
	q, v := parseQuery(b)
	switch v {
	case queryDrop:
		s.counter.malformed.Add(1)
		return nil, nil // answering garbage would make us an amplifier
	case queryFormat, queryNotImp:
		s.counter.malformed.Add(1)
		return headerReply(b, v), nil
	case queryBadOPT:
		s.counter.malformed.Add(1)
		return appendReply(nil, b, q.qEnd, false, false, &reply{rcode: dns.RcodeFormatError}), nil
	}
	if r := s.canaryReply(b, &q); r != nil {
		return r, nil
	}
	var route Answer // where to forward: Upstream, Local, or neither for any upstream
	if !bypassed {
		var r []byte
		if r, route = s.answerLocal(b, &q, client); r != nil {
			return r, nil
		}
	}
	size := maxSize(q.udpSize, tcp)
	var (
		kb  [1 + maxKeyLen]byte
		key []byte
	)
	cacheable := route.Upstream == nil && q.onlyOPT
	if cacheable {
		first := byte(keyAll)
		if route.Local {
			first = keyLocal
		}
		key, cacheable = cacheKey(append(kb[:0], first), b, q.qEnd)
	}
	if cacheable && s.cache != nil {
		if hit := s.cache.appendHit(nil, b, q.qEnd, key, size, time.Now()); hit != nil {
			s.counter.cacheHits.Add(1)
			return hit, nil
		}
	}
	f := s.newForwarding(b, q.qEnd, q.edns, q.do, size, key, cacheable)
	f.via, f.local = route.Upstream, route.Local
	return nil, f
}

// newForwarding prepares the forwarding of query b, copying it. key is the
// query's cache key when cacheable.
func (s *Server) newForwarding(b []byte, qEnd int, edns, do bool, size int, key []byte, cacheable bool) *forwarding {
	f := &forwarding{
		query:    bytes.Clone(b),
		clientID: binary.BigEndian.Uint16(b),
		qEnd:     qEnd,
		edns:     edns,
		do:       do,
		maxSize:  size,
	}
	if cacheable && s.cache != nil {
		f.key = string(key)
	}
	return f
}

// answerLocal returns the reply to q (raw bytes b) when the agent answers it
// itself: a private name, or PTR for a stub address. Otherwise it returns a
// nil reply and where to forward q: to the Upstream the policy gives the
// name, to the local network's upstreams (Local), or, with neither set, to
// the OS's resolvers.
func (s *Server) answerLocal(b []byte, q *parsedQuery, client netip.AddrPort) ([]byte, Answer) {
	p := s.policy.Load().p
	if p == nil || q.qclass != dns.ClassINET {
		return nil, Answer{}
	}
	var r reply
	if q.qtype == dns.TypePTR {
		ptr, ok := reversePTR(p, q.name)
		if !ok {
			return nil, Answer{}
		}
		r = reply{aa: true, rrType: dns.TypePTR, ttl: ptrTTL, ptr: ptr}
	} else {
		a, owned := s.lookup(p, q.name, client)
		switch {
		case !owned:
			return nil, Answer{}
		case a.Upstream != nil || a.Local:
			return nil, Answer{Upstream: a.Upstream, Local: a.Upstream == nil}
		case !a.Addr.IsValid():
			// Private, but without an address now (the stub range is
			// exhausted, say).
			s.counter.servFail.Add(1)
			r = reply{rcode: dns.RcodeServerFailure}
		default:
			r = stubReply(q.qtype, &a)
		}
	}
	if q.edns && q.version != 0 {
		// RFC 6891 6.1.3: we speak only version 0.
		s.counter.malformed.Add(1)
		r = reply{rcode: dns.RcodeBadVers}
	}
	s.counter.local.Add(1)
	return appendReply(nil, b, q.qEnd, q.edns, q.do, &r), Answer{}
}

// lookup asks the policy about a question name, and reports it not owned
// when the client is to bypass the agent.
func (s *Server) lookup(p Policy, qname string, client netip.AddrPort) (Answer, bool) {
	name, ok := canonicalName(qname)
	if !ok {
		return Answer{}, false
	}
	a, owned := p.Lookup(name)
	if owned && s.bypass != nil && s.bypass(client) {
		return Answer{}, false
	}
	return a, owned
}

// reversePTR returns the PTR target, in wire form, for a reverse name that
// names a stub address.
func reversePTR(p Policy, qname string) ([]byte, bool) {
	addr, ok := reverseAddr(qname)
	if !ok {
		return nil, false
	}
	name, ok := p.Reverse(addr)
	if !ok {
		return nil, false
	}
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, false
	}
	return buf[:n], true
}

// canonicalName turns a question name into the form Policy receives: lower
// case, without the trailing dot. Names with escapes (\. or \DDD inside a
// label) are never private app names and are reported as not ok.
func canonicalName(qname string) (string, bool) {
	if strings.IndexByte(qname, '\\') >= 0 {
		return "", false
	}
	name := strings.TrimSuffix(qname, ".")
	if name == "" {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(name), true
		}
	}
	return name, true
}

// reverseAddr parses an in-addr.arpa or ip6.arpa name into the address it names.
func reverseAddr(qname string) (netip.Addr, bool) {
	name := strings.ToLower(strings.TrimSuffix(qname, "."))
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		slices4 := [4]string{labels[3], labels[2], labels[1], labels[0]}
		a, err := netip.ParseAddr(strings.Join(slices4[:], "."))
		if err != nil {
			return netip.Addr{}, false
		}
		return a, true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		return parseIP6Arpa(rest)
	}
	return netip.Addr{}, false
}

func parseIP6Arpa(rest string) (netip.Addr, bool) {
	// 32 nibbles separated by dots, least significant first.
	if len(rest) != 63 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i := range 32 {
		c := rest[2*i]
		if i < 31 && rest[2*i+1] != '.' {
			return netip.Addr{}, false
		}
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		default:
			return netip.Addr{}, false
		}
		pos := 31 - i // nibble index from the most significant end
		if pos%2 == 0 {
			b[pos/2] |= v << 4
		} else {
			b[pos/2] |= v
		}
	}
	return netip.AddrFrom16(b), true
}
