package dnsproxy

import "github.com/miekg/dns"

// canaryName is the name browsers ask before they turn on their own DNS over
// HTTPS by default (Firefox; Chrome keeps to the OS resolver's choice). An
// NXDOMAIN answer is the standard way for a network to say "keep using my
// resolver", and the agent's resolver must be used for private names to
// resolve. It is answered so for every client and type, never forwarded.
// https://support.mozilla.org/kb/canary-domain-use-application-dnsnet
const canaryName = "use-application-dns.net"

// canaryReply returns the NXDOMAIN reply to q (raw bytes b) when q asks the
// canary name, and nil otherwise.
func (s *Server) canaryReply(b []byte, q *parsedQuery) []byte {
	if name, ok := canonicalName(q.name); !ok || name != canaryName {
		return nil
	}
	r := reply{rcode: dns.RcodeNameError}
	if q.edns && q.version != 0 {
		s.counter.malformed.Add(1)
		r = reply{rcode: dns.RcodeBadVers} // RFC 6891 6.1.3
	}
	s.counter.local.Add(1)
	return appendReply(nil, b, q.qEnd, q.edns, q.do, &r)
}
