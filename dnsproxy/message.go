package dnsproxy

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"
)

// Upstream answers are handled as the bytes the upstream sent: checked against
// the query, walked to find what the cache needs (rcode, TTLs and where they
// are), and passed on unchanged but for the ID. Nothing is parsed into
// dns.Msg, so that options and records the agent does not know reach the
// client as they were.

var (
	// errMismatch marks an upstream packet that is not the answer to our
	// query (another ID or question, or not a response).
	errMismatch = errors.New("response does not match the query")
	// errMalformed marks an answer to our query that is not a well-formed
	// DNS message.
	errMalformed = errors.New("malformed response")
)

// respInfo is what walkResponse learns about a response.
type respInfo struct {
	rcode     int // with the extended bits of the OPT record
	truncated bool
	qdcount   int
	ancount   int
	// ttl is the minimum TTL of the answer and authority records; soaTTL
	// the minimum of min(TTL, MINIMUM) over the authority section's SOA
	// records (RFC 2308 5); haveTTL and haveSOA say whether there were any.
	ttl, soaTTL      uint32
	haveTTL, haveSOA bool
	ttlOffs          []uint16 // offsets of every record's TTL, OPT excepted
	qEnd             int      // end of the question (headerLen without one)
}

// checkAnswer checks that m is the response, with ID id, to query (whose
// question ends at qEnd), and walks it. A response for another ID or
// question is errMismatch: the caller keeps waiting for the real one. A
// response without a question is accepted only as an error (FORMERR,
// NOTIMP, BADVERS…), which servers may send that way.
func checkAnswer(m []byte, id uint16, query []byte, qEnd int) (respInfo, error) {
	if len(m) < headerLen || binary.BigEndian.Uint16(m) != id || m[2]&0x80 == 0 {
		return respInfo{}, errMismatch
	}
	switch binary.BigEndian.Uint16(m[4:]) {
	case 0:
	case 1:
		if len(m) < qEnd || !equalFold(m[headerLen:qEnd], query[headerLen:qEnd]) {
			return respInfo{}, errMismatch
		}
	default:
		return respInfo{}, errMismatch
	}
	info, ok := walkResponse(m)
	if !ok {
		return respInfo{}, errMalformed
	}
	if info.qdcount == 0 && (info.rcode == dns.RcodeSuccess || info.rcode == dns.RcodeNameError) {
		return respInfo{}, errMismatch
	}
	return info, nil
}

// equalFold compares two wire-form questions, ASCII letters in any case.
// Length octets (at most 63) are never letters, so the whole name can be
// folded.
func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// walkResponse walks a DNS message: header, at most one question, and every
// record, checking that names and lengths stay inside the message. Bytes after
// the last record are tolerated, as miekg/dns and most resolvers do.
func walkResponse(m []byte) (info respInfo, ok bool) {
	if len(m) < headerLen {
		return info, false
	}
	info.truncated = m[2]&0x02 != 0
	info.rcode = int(m[3] & 0xF)
	info.qdcount = int(binary.BigEndian.Uint16(m[4:]))
	info.ancount = int(binary.BigEndian.Uint16(m[6:]))
	nscount := int(binary.BigEndian.Uint16(m[8:]))
	arcount := int(binary.BigEndian.Uint16(m[10:]))
	off := headerLen
	if info.qdcount > 1 {
		return info, false
	}
	if info.qdcount == 1 {
		if off, ok = skipName(m, off); !ok || off+4 > len(m) {
			return info, false
		}
		off += 4
	}
	info.qEnd = off
	for i := range info.ancount + nscount + arcount {
		if off, ok = walkRecord(m, off, &info, sectionOf(i, info.ancount, nscount)); !ok {
			return info, false
		}
	}
	return info, true
}

type section int

const (
	sectionAnswer section = iota
	sectionAuthority
	sectionAdditional
)

func sectionOf(i, ancount, nscount int) section {
	switch {
	case i < ancount:
		return sectionAnswer
	case i < ancount+nscount:
		return sectionAuthority
	}
	return sectionAdditional
}

// walkRecord reads the record at off into info and returns the offset after
// it.
func walkRecord(m []byte, off int, info *respInfo, sec section) (int, bool) {
	off, ok := skipName(m, off)
	if !ok || off+10 > len(m) {
		return 0, false
	}
	rrtype := binary.BigEndian.Uint16(m[off:])
	ttl := binary.BigEndian.Uint32(m[off+4:])
	rdlen := int(binary.BigEndian.Uint16(m[off+8:]))
	end := off + 10 + rdlen
	if end > len(m) {
		return 0, false
	}
	if rrtype == dns.TypeOPT {
		if sec != sectionAdditional {
			return 0, false
		}
		info.rcode |= int(ttl>>24) << 4
		return end, true
	}
	if off+4 > 0xFFFF {
		return 0, false
	}
	info.ttlOffs = append(info.ttlOffs, uint16(off+4))
	if sec == sectionAdditional {
		return end, true
	}
	if !info.haveTTL || ttl < info.ttl {
		info.ttl, info.haveTTL = ttl, true
	}
	if sec == sectionAuthority && rrtype == dns.TypeSOA && rdlen >= 22 {
		// MINIMUM is the last field of SOA's RDATA.
		soa := min(ttl, binary.BigEndian.Uint32(m[end-4:]))
		if !info.haveSOA || soa < info.soaTTL {
			info.soaTTL, info.haveSOA = soa, true
		}
	}
	return end, true
}

// skipName returns the offset after the (possibly compressed) name at off. A
// compression pointer must point backwards, as RFC 1035 4.1.4 has it.
func skipName(m []byte, off int) (int, bool) {
	for start := off; off < len(m); {
		l := int(m[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			if off+2 > len(m) || int(binary.BigEndian.Uint16(m[off:])&0x3FFF) >= start {
				return 0, false
			}
			return off + 2, true
		case l&0xC0 != 0:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// cacheTTL is how long a response may be cached, in seconds: a complete
// NOERROR answer for the smallest TTL of its answer and authority records;
// NXDOMAIN and NODATA for the SOA's negative TTL (RFC 2308 5; without a SOA
// they are not cached). Zero means not cacheable.
func (info *respInfo) cacheTTL() uint32 {
	switch {
	case info.truncated:
		return 0
	case info.rcode == dns.RcodeSuccess && info.ancount > 0 && info.haveTTL:
		return info.ttl
	case (info.rcode == dns.RcodeSuccess || info.rcode == dns.RcodeNameError) && info.haveSOA:
		return info.soaTTL
	}
	return 0
}
