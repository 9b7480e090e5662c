package main

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// The load builds its queries and reads the answers straight from the wire,
// without miekg/dns's messages: at 20,000 queries/s the load shares the
// machine's cores with the agent it measures, and must cost it little.

const headerLen = 12

// rcodeName names an rcode for the soak's messages.
func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}

// appendQuery appends a recursive query for the A record of name (dotted,
// with or without the trailing dot) with the given ID.
func appendQuery(b []byte, id uint16, name string) []byte {
	b = binary.BigEndian.AppendUint16(b, id)
	b = append(b, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	for rest := strings.TrimSuffix(name, "."); rest != ""; {
		var l string
		l, rest, _ = strings.Cut(rest, ".")
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, dns.TypeA)
	return binary.BigEndian.AppendUint16(b, dns.ClassINET)
}

// answer is what the soak checks of a reply.
type answer struct {
	id    uint16
	rcode int
	// question is the question's name on the wire, in the reply's
	// buffer: valid until the next read (qname decodes it for messages).
	question []byte
	ancount  int
	a        netip.Addr // the first answer's address, if it is an A record
}

var errShort = errors.New("short or malformed reply")

// parseReply reads a reply to a query from appendQuery.
func parseReply(b []byte) (answer, error) {
	var r answer
	if len(b) < headerLen || b[2]&0x80 == 0 || binary.BigEndian.Uint16(b[4:]) != 1 {
		return r, errShort
	}
	r.id = binary.BigEndian.Uint16(b)
	r.rcode = int(b[3] & 0xf)
	r.ancount = int(binary.BigEndian.Uint16(b[6:]))
	off := headerLen
	for {
		if off >= len(b) || b[off]&0xc0 != 0 {
			return r, errShort
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		if off+l > len(b) {
			return r, errShort
		}
		off += l
	}
	r.question = b[headerLen:off]
	off += 4 // type, class
	if r.ancount == 0 {
		return r, nil
	}
	// The first answer: its owner (a pointer, or labels), then type, class,
	// TTL, length and data.
	for {
		if off >= len(b) {
			return r, errShort
		}
		if b[off]&0xc0 == 0xc0 {
			off += 2
			break
		}
		l := int(b[off])
		off += 1 + l
		if l == 0 {
			break
		}
	}
	if off+10 > len(b) {
		return r, errShort
	}
	typ, rdlen := binary.BigEndian.Uint16(b[off:]), int(binary.BigEndian.Uint16(b[off+8:]))
	off += 10
	if off+rdlen > len(b) {
		return r, errShort
	}
	if typ == dns.TypeA && rdlen == 4 {
		r.a = netip.AddrFrom4([4]byte(b[off : off+4]))
	}
	return r, nil
}

// qname is the question's name, dotted.
func (r *answer) qname() string {
	var name strings.Builder
	for q := r.question; len(q) > 1; q = q[1+q[0]:] {
		name.Write(q[1 : 1+q[0]])
		name.WriteByte('.')
	}
	return name.String()
}
