package dnsproxy

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// parsedQuery is a query as the general path sees it, parsed from the wire by
// parseQuery. Only what the agent decides on is parsed: the question and the
// OPT record's version, DO bit and buffer size. The rest, EDNS options
// included, stays in the bytes that are forwarded.
type parsedQuery struct {
	flags   uint16
	name    string // presentation form, as miekg/dns writes it ("a.example.")
	qtype   uint16
	qclass  uint16
	qEnd    int // end of the question in the message
	edns    bool
	version uint8
	do      bool
	udpSize uint16
	// onlyOPT is true when the additional section holds nothing but an
	// OPT record, if that: the answer may then be cached (a TSIG-signed
	// query's answer belongs to its signer).
	onlyOPT bool
}

// verdict is what parseQuery makes of a message.
type verdict int

const (
	queryOK     verdict = iota
	queryDrop           // a response, or too short to answer: dropped
	queryFormat         // answered FORMERR, header only
	queryNotImp         // another opcode: answered NOTIMP, header only
	queryBadOPT         // answered FORMERR with the question (RFC 6891 6.1.1)
)

// parseQuery parses b as a query: one question (its name not compressed),
// nothing in the answer and authority sections, and at most an OPT and a TSIG
// record in the additional section, the OPT owned by the root and alone of its
// kind. Bytes after the last record are tolerated.
func parseQuery(b []byte) (q parsedQuery, v verdict) {
	if len(b) < headerLen {
		return q, queryDrop
	}
	q.flags = binary.BigEndian.Uint16(b[2:])
	switch {
	case q.flags&flagQR != 0:
		return q, queryDrop // answering a response could reflect it
	case int(q.flags>>opcodeShift)&0xF != dns.OpcodeQuery:
		return q, queryNotImp
	case binary.BigEndian.Uint16(b[4:]) != 1, binary.BigEndian.Uint16(b[6:]) != 0,
		binary.BigEndian.Uint16(b[8:]) != 0, binary.BigEndian.Uint16(b[10:]) > 2:
		return q, queryFormat
	}
	name, off, err := dns.UnpackDomainName(b, headerLen)
	if err != nil || off+4 > len(b) || compressed(b[headerLen:off]) {
		return q, queryFormat
	}
	q.name = name
	q.qtype = binary.BigEndian.Uint16(b[off:])
	q.qclass = binary.BigEndian.Uint16(b[off+2:])
	q.qEnd = off + 4
	return q, parseAdditional(b, &q)
}

// compressed reports whether the wire-form name ends in a compression
// pointer.
func compressed(name []byte) bool {
	for i := 0; i < len(name); i += 1 + int(name[i]) {
		if name[i]&0xC0 != 0 {
			return true
		}
	}
	return false
}

// parseAdditional reads the additional section of a query into q.
func parseAdditional(b []byte, q *parsedQuery) verdict {
	off := q.qEnd
	q.onlyOPT = true
	for range binary.BigEndian.Uint16(b[10:]) {
		root := off < len(b) && b[off] == 0
		end, ok := skipName(b, off)
		if !ok || end+10 > len(b) {
			return queryFormat
		}
		rrtype := binary.BigEndian.Uint16(b[end:])
		next := end + 10 + int(binary.BigEndian.Uint16(b[end+8:]))
		if next > len(b) {
			return queryFormat
		}
		if rrtype != dns.TypeOPT {
			q.onlyOPT = false
			off = next
			continue
		}
		if q.edns || !root {
			return queryBadOPT
		}
		ttl := binary.BigEndian.Uint32(b[end+4:])
		q.edns = true
		q.udpSize = binary.BigEndian.Uint16(b[end+2:])
		q.version = uint8(ttl >> 16)
		q.do = ttl&flagDO != 0
		off = next
	}
	return queryOK
}

// maxSize is the largest answer the client accepts: its EDNS buffer size (at
// least 512) over UDP, 64 KiB over TCP.
func maxSize(udpSize uint16, tcp bool) int {
	switch {
	case tcp:
		return dns.MaxMsgSize
	case udpSize > dns.MinMsgSize:
		return int(udpSize)
	}
	return dns.MinMsgSize
}
