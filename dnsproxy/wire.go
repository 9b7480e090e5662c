package dnsproxy

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// The fast path answers the common query — one question, a plain name, class
// IN, at most an EDNS0 OPT record — for a private name, or for a forwarded
// name whose answer is cached, straight from the wire bytes into the reply
// buffer, with no allocation; for a forwarded name not cached it prepares the
// forwarding. Anything else takes the general path (serve.go: answerLocal,
// then the cache and the upstreams), which gives the same answers;
// TestFastPathMatchesGeneral and FuzzQuery hold the two to that.

const (
	headerLen = 12
	maxName   = 253 // presentation length, without the trailing dot
)

// wireQuery is a query parsed in place by parseSimpleQuery.
type wireQuery struct {
	flags   uint16
	udpSize uint16 // the client's EDNS0 buffer size; 0 without EDNS
	qEnd    int    // end of the question in the message
	qtype   uint16
	edns    bool
	do      bool
	nameLen int
	name    [maxName]byte // lower case, dotted, no trailing dot
}

// parseSimpleQuery parses b if it has the simple shape the fast path serves.
// It returns false for everything else, malformed or merely unusual, which
// then goes the general way.
func parseSimpleQuery(b []byte, q *wireQuery) bool {
	if len(b) < headerLen+5 {
		return false
	}
	q.flags = binary.BigEndian.Uint16(b[2:])
	// QR=0, opcode QUERY, one question, no answer or authority, at most one
	// additional record.
	if q.flags&(flagQR|0xF<<opcodeShift) != 0 ||
		binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint16(b[6:]) != 0 ||
		binary.BigEndian.Uint16(b[8:]) != 0 {
		return false
	}
	arcount := binary.BigEndian.Uint16(b[10:])
	off, ok := parsePlainName(b, headerLen, q)
	if !ok || off+4 > len(b) {
		return false
	}
	q.qtype = binary.BigEndian.Uint16(b[off:])
	if binary.BigEndian.Uint16(b[off+2:]) != dns.ClassINET {
		return false
	}
	q.qEnd = off + 4
	q.edns, q.do, q.udpSize = false, false, 0
	switch arcount {
	case 0:
		return q.qEnd == len(b)
	case 1:
		return parseOPT(b[q.qEnd:], q)
	}
	return false
}

// parsePlainName reads an uncompressed name made of letters, digits, '-' and
// '_' (the only names whose presentation form needs no escaping), lower-casing
// it into q.name. The root name is not plain.
func parsePlainName(b []byte, off int, q *wireQuery) (int, bool) {
	n := 0
	for {
		if off >= len(b) {
			return 0, false
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		need := l
		if n > 0 {
			need++ // the dot
		}
		if l > 63 || off+l > len(b) || n+need > maxName {
			return 0, false
		}
		if n > 0 {
			q.name[n] = '.'
			n++
		}
		for _, c := range b[off : off+l] {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				return 0, false
			}
			q.name[n] = c
			n++
		}
		off += l
	}
	if n == 0 {
		return 0, false
	}
	q.nameLen = n
	return off, true
}

// parseOPT accepts exactly one EDNS version 0 OPT record owned by the root,
// ending the message, with well-formed options. The options are not looked
// at: local answers ignore them (RFC 6891 6.1.2), and they are part of the
// cache key.
func parseOPT(b []byte, q *wireQuery) bool {
	// name(1) type(2) class(2) ttl(4) rdlen(2)
	if len(b) < 11 || b[0] != 0 || binary.BigEndian.Uint16(b[1:]) != dns.TypeOPT {
		return false
	}
	ttl := binary.BigEndian.Uint32(b[5:])
	if version := byte(ttl >> 16); version != 0 {
		return false
	}
	if 11+int(binary.BigEndian.Uint16(b[9:])) != len(b) {
		return false
	}
	for opts := b[11:]; len(opts) > 0; {
		if len(opts) < 4 {
			return false
		}
		l := int(binary.BigEndian.Uint16(opts[2:]))
		if 4+l > len(opts) {
			return false
		}
		opts = opts[4+l:]
	}
	q.edns = true
	q.do = ttl&flagDO != 0
	q.udpSize = binary.BigEndian.Uint16(b[3:])
	return true
}

// fastAnswer appends to out the reply to query b if b is a simple query for
// a name the policy owns with a valid address, or for a name whose forwarded
// answer is cached. Otherwise it returns a nil reply and, for a simple
// query for a name that is neither owned nor cached, the forwarding to do.
// With neither, the query is for the general path; bypassed then reports
// that it is a well-formed query for a private name whose client Bypass
// exempts: it is to be forwarded as it is, and Bypass not asked again.
func (s *Server) fastAnswer(b, out []byte, client netip.AddrPort, names *nameCache) (reply []byte, f *forwarding, bypassed bool) {
	var q wireQuery
	if !parseSimpleQuery(b, &q) || q.qtype == dns.TypePTR || string(q.name[:q.nameLen]) == canaryName {
		return nil, nil, false // the general path answers these
	}
	if p := s.policy.Load().p; p != nil {
		if a, owned := p.Lookup(names.intern(q.name[:q.nameLen])); owned {
			if !a.Addr.IsValid() || a.Upstream != nil {
				return nil, nil, false
			}
			if s.bypass != nil && s.bypass(client) {
				return nil, nil, true
			}
			s.counter.local.Add(1)
			r := stubReply(q.qtype, &a)
			return appendReply(out, b, q.qEnd, q.edns, q.do, &r), nil, false
		}
	}
	size := maxSize(q.udpSize, false)
	var kb [1 + maxKeyLen]byte
	key, ok := cacheKey(append(kb[:0], keyAll), b, q.qEnd)
	if ok && s.cache != nil {
		if r := s.cache.appendHit(out, b, q.qEnd, key, size, time.Now()); r != nil {
			s.counter.cacheHits.Add(1)
			return r, nil, false
		}
	}
	return nil, s.newForwarding(b, q.qEnd, q.edns, q.do, size, key, ok), false
}

// nameCache hands out the query names of one reader as strings. The Policy
// may keep the name it is given (a stub assignment does), so each must be a
// string of its own; giving out the same string for a name seen before spares
// an allocation per query. A nil nameCache allocates every time.
type nameCache struct{ m map[string]string }

// maxInterned bounds a nameCache; when full it starts over.
const maxInterned = 4096

func newNameCache() *nameCache { return &nameCache{m: make(map[string]string)} }

func (c *nameCache) intern(b []byte) string {
	if c == nil {
		return string(b)
	}
	if s, ok := c.m[string(b)]; ok {
		return s
	}
	if len(c.m) >= maxInterned {
		clear(c.m)
	}
	s := string(b)
	c.m[s] = s
	return s
}
