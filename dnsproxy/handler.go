package dnsproxy

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

const (
	// localUDPSize is the EDNS0 buffer size advertised in local answers
	// (the DNS flag day 2020 value).
	localUDPSize = 1232
	opcodeShift  = 11
	flagQR       = 1 << 15
)

// acceptQuery replaces miekg's default filter: responses are dropped (they could
// be reflected), other opcodes get NOTIMP, and anything but a single question
// with empty answer and authority sections gets FORMERR. A query may carry an
// OPT and a TSIG record, nothing more.
func acceptQuery(h dns.Header) dns.MsgAcceptAction {
	switch {
	case h.Bits&flagQR != 0:
		return dns.MsgIgnore
	case int(h.Bits>>opcodeShift)&0xF != dns.OpcodeQuery:
		return dns.MsgRejectNotImplemented
	case h.Qdcount != 1, h.Ancount != 0, h.Nscount != 0, h.Arcount > 2:
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// ServeDNS implements dns.Handler (it serves TCP): it answers private names
// locally and forwards the rest.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.counter.queries.Add(1)
	resp, via := s.answerLocal(req, clientOf(w))
	if resp != nil {
		w.WriteMsg(resp)
		return
	}
	s.forward(w, req, via)
}

func clientOf(w dns.ResponseWriter) netip.AddrPort {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

// answerLocal returns the answer to req when the agent must give it itself: a
// malformed query or a private name. Otherwise it returns a nil answer and the
// Upstream to forward req to: the one the policy gives the name, or nil for
// the OS's resolvers.
func (s *Server) answerLocal(req *dns.Msg, client netip.AddrPort) (*dns.Msg, Upstream) {
	if len(req.Question) != 1 {
		s.counter.malformed.Add(1)
		return errorReply(req, dns.RcodeFormatError), nil
	}
	opt, ok := queryOPT(req)
	if !ok {
		s.counter.malformed.Add(1)
		return errorReply(req, dns.RcodeFormatError), nil
	}
	q := req.Question[0]
	p := s.policy.Load().p
	if p == nil || q.Qclass != dns.ClassINET {
		return nil, nil
	}
	var resp *dns.Msg
	if q.Qtype == dns.TypePTR {
		resp = s.answerPTR(p, req, q)
	} else {
		a, owned := s.lookup(p, q.Name, client)
		switch {
		case !owned:
			return nil, nil
		case a.Upstream != nil:
			return nil, a.Upstream
		}
		resp = s.answerName(req, q, a)
	}
	if resp == nil {
		return nil, nil
	}
	if opt != nil {
		if opt.Version() != 0 {
			// RFC 6891 6.1.3: we speak only version 0.
			s.counter.malformed.Add(1)
			resp = errorReply(req, dns.RcodeBadVers)
		}
		addOPT(resp, opt)
	}
	s.counter.local.Add(1)
	return resp, nil
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

// queryOPT returns the query's OPT record, if any. ok is false when the query's
// additional section is malformed: more than one OPT, or an OPT not owned by
// the root (RFC 6891 6.1.1).
func queryOPT(req *dns.Msg) (opt *dns.OPT, ok bool) {
	for _, rr := range req.Extra {
		o, isOPT := rr.(*dns.OPT)
		if !isOPT {
			continue
		}
		if opt != nil || o.Hdr.Name != "." {
			return nil, false
		}
		opt = o
	}
	return opt, true
}

// answerName answers a query for a private name: the stub address for A (or
// AAAA when the stub is IPv6, and ANY), and NOERROR with an empty answer for
// every other type, so that clients use the stub and browsers do not reach
// around it through HTTPS/SVCB or IPv6.
func (s *Server) answerName(req *dns.Msg, q dns.Question, a Answer) *dns.Msg {
	if !a.Addr.IsValid() {
		s.counter.servFail.Add(1)
		return errorReply(req, dns.RcodeServerFailure)
	}
	resp := localReply(req)
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: ttlSeconds(a)}
	addr := a.Addr.Unmap()
	switch {
	case addr.Is4() && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
		hdr.Rrtype = dns.TypeA
		resp.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IP(addr.AsSlice())}}
	case addr.Is6() && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
		hdr.Rrtype = dns.TypeAAAA
		resp.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.IP(addr.AsSlice())}}
	}
	return resp
}

// answerPTR answers a reverse query for a stub address with its name.
func (s *Server) answerPTR(p Policy, req *dns.Msg, q dns.Question) *dns.Msg {
	addr, ok := reverseAddr(q.Name)
	if !ok {
		return nil
	}
	name, ok := p.Reverse(addr)
	if !ok {
		return nil
	}
	resp := localReply(req)
	resp.Answer = []dns.RR{&dns.PTR{
		Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 60},
		Ptr: dns.Fqdn(name),
	}}
	return resp
}

// localReply is an authoritative NOERROR reply to req with no records: the
// agent is the authority for the names it owns.
func localReply(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	return resp
}

func errorReply(req *dns.Msg, rcode int) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetRcode(req, rcode)
	resp.RecursionAvailable = true
	return resp
}

// addOPT adds our OPT record to a local answer to an EDNS query, echoing DO
// (RFC 3225) and carrying the extended part of the rcode.
func addOPT(resp *dns.Msg, q *dns.OPT) {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(localUDPSize)
	if q.Do() {
		o.SetDo()
	}
	if resp.Rcode > 0xF {
		o.SetExtendedRcode(uint16(resp.Rcode))
	}
	resp.Extra = append(resp.Extra, o)
}

func ttlSeconds(a Answer) uint32 {
	sec := a.TTL.Seconds()
	switch {
	case sec < 0:
		return 0
	case sec > 1<<31-1: // RFC 2181 8: TTLs are 31-bit
		return 1<<31 - 1
	}
	return uint32(sec)
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
