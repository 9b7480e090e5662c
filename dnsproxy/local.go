package dnsproxy

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// The agent's own replies — stub answers, NODATA, PTR, and the errors it
// gives itself — are written straight into the reply buffer by appendReply,
// on the fast path and the general path alike.

const (
	// localUDPSize is the EDNS0 buffer size advertised in the agent's own
	// replies (the DNS flag day 2020 value).
	localUDPSize = 1232
	opcodeShift  = 11
	flagQR       = 1 << 15
	flagAA       = 1 << 10
	flagTC       = 1 << 9
	flagRD       = 1 << 8
	flagRA       = 1 << 7
	flagCD       = 1 << 4
	flagDO       = 1 << 15 // in the OPT record's TTL field
	// ptrTTL is the TTL of PTR answers for stub addresses.
	ptrTTL = 60
)

// reply is one of the agent's own replies to a query.
type reply struct {
	rcode int
	aa    bool // authoritative: the agent owns the name
	// rrType is the type of the one answer record (A, AAAA or PTR), 0 for
	// none; its owner is the question's name.
	rrType uint16
	ttl    uint32
	addr   netip.Addr // for A and AAAA
	ptr    []byte     // for PTR: the target name in wire form
}

// appendReply appends r, the reply to the query whose raw bytes are b, to
// out: the query's ID, RD and CD, its question as asked (case kept), and an
// OPT record when the query had one (echoing DO, carrying the rcode's
// extended bits).
func appendReply(out, b []byte, qEnd int, edns, do bool, r *reply) []byte {
	qflags := binary.BigEndian.Uint16(b[2:])
	flags := flagQR | flagRA | qflags&(flagRD|flagCD) | uint16(r.rcode&0xF)
	if r.aa {
		flags |= flagAA
	}
	var ancount, arcount uint16
	if r.rrType != 0 {
		ancount = 1
	}
	if edns {
		arcount = 1
	}
	out = append(out, b[0], b[1])
	out = binary.BigEndian.AppendUint16(out, flags)
	out = append(out, 0, 1)
	out = binary.BigEndian.AppendUint16(out, ancount)
	out = append(out, 0, 0)
	out = binary.BigEndian.AppendUint16(out, arcount)
	out = append(out, b[headerLen:qEnd]...)
	if r.rrType != 0 {
		out = appendRecord(out, r)
	}
	if edns {
		optTTL := uint32(r.rcode>>4) << 24
		if do {
			optTTL |= flagDO
		}
		out = append(out, 0) // root
		out = binary.BigEndian.AppendUint16(out, dns.TypeOPT)
		out = binary.BigEndian.AppendUint16(out, localUDPSize)
		out = binary.BigEndian.AppendUint32(out, optTTL)
		out = append(out, 0, 0)
	}
	return out
}

// appendRecord appends r's answer record, its owner a pointer to the
// question's name.
func appendRecord(out []byte, r *reply) []byte {
	out = append(out, 0xC0, headerLen)
	out = binary.BigEndian.AppendUint16(out, r.rrType)
	out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
	out = binary.BigEndian.AppendUint32(out, r.ttl)
	switch r.rrType {
	case dns.TypeA:
		ip := r.addr.As4()
		out = append(out, 0, 4)
		return append(out, ip[:]...)
	case dns.TypeAAAA:
		ip := r.addr.As16()
		out = append(out, 0, 16)
		return append(out, ip[:]...)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(r.ptr)))
	return append(out, r.ptr...)
}

// stubReply is the reply for a private name with a stub address: the stub
// when the question asks for its family (A, or AAAA for an IPv6 stub —
// Addr6, or Addr when that is IPv6 — and ANY, answered with Addr), and NOERROR with no answer for every other type, so that clients use
// the stub and browsers do not reach around it through HTTPS/SVCB or IPv6.
func stubReply(qtype uint16, a *Answer) reply {
	r := reply{aa: true, ttl: ttlSeconds(a.TTL)}
	addr := a.Addr.Unmap()
	if qtype == dns.TypeAAAA && a.Addr6.Is6() && !a.Addr6.Is4In6() {
		addr = a.Addr6
	}
	switch {
	case addr.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
		r.rrType, r.addr = dns.TypeA, addr
	case addr.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
		r.rrType, r.addr = dns.TypeAAAA, addr
	}
	return r
}

// headerReply answers a query that could not be parsed or accepted: FORMERR
// (or NOTIMP for another opcode), only a header, with the query's ID, opcode
// and RD.
func headerReply(b []byte, v verdict) []byte {
	qflags := binary.BigEndian.Uint16(b[2:])
	rcode := uint16(dns.RcodeFormatError)
	if v == queryNotImp {
		rcode = dns.RcodeNotImplemented
	}
	flags := flagQR | qflags&(0xF<<opcodeShift|flagRD) | rcode
	out := make([]byte, headerLen)
	copy(out, b[:2])
	binary.BigEndian.PutUint16(out[2:], flags)
	return out
}

func ttlSeconds(ttl time.Duration) uint32 {
	sec := ttl.Seconds()
	switch {
	case sec < 0:
		return 0
	case sec > 1<<31-1: // RFC 2181 8: TTLs are 31-bit
		return 1<<31 - 1
	}
	return uint32(sec)
}
