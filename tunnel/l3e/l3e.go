// Package l3e is the L3E tunnel's wire protocol, shared by the agent's client
// (this package's Client) and the gateway (cloud/gateway): whole IP packets
// carried both ways over one DTLS 1.2 association (pion/dtls, UDP 443, mutual
// certificate authentication with the device certificate the tenant issued,
// AES-GCM suites only), so that corporate servers and other devices can open
// connections to the device, not only the reverse.
//
// pion makes the handshake; the records that carry the messages are sealed
// and opened by tunnel/l3e/record with the association's keys, in place in
// batched socket and TUN buffers (Socket, SendQueue, ReadTUN), and pion's
// conn reads a FeedConn fed with what is not ours (handshake
// retransmissions, alerts, a foreign peer's records).
//
// Each DTLS record carries one message, whose first byte is its type:
//
//	0x01 packet          one IPv4 or IPv6 packet, as read from a TUN
//	0x02 template        gen u32 | index u8 | count u8 | chunk of the template JSON
//	0x03 keepalive       8 opaque bytes, echoed by the peer
//	0x04 keepalive-reply the 8 bytes of the keepalive it answers
//	0x05 bye             a short UTF-8 reason; the sender closes the association
//
// The gateway pushes the template right after the handshake (and again when it
// changes): the device's VPN address and prefix, the MTU, the corporate DNS
// servers and suffix, the routes (prefixes, protocols and ports of the tenant's
// L3E apps this user may use), the keepalive interval and the dynamic-DNS
// parameters the agent hands to its RFC 2136 client. A template is JSON and may
// be larger than one record: it is cut into chunks of at most MaxChunk bytes,
// all of one generation, reassembled by an Assembler, decoded strictly and
// validated (DecodeTemplate) so that a bad one is refused with the path of each
// problem and the last good one stays in force.
//
// Both ends enforce the routes on every packet with a Filter (Classify reads
// the addresses, protocol and ports; Filter.Allows decides), so neither has to
// trust the other to drop what the user may not reach.
package l3e

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Message types: the first byte of every record.
const (
	TypePacket         byte = 0x01
	TypeTemplate       byte = 0x02
	TypeKeepalive      byte = 0x03
	TypeKeepaliveReply byte = 0x04
	TypeBye            byte = 0x05
)

// Sizes of the framing.
const (
	// MaxChunk is the most template bytes one record carries; with the DTLS
	// and UDP headers a chunk record fits in a 1280-byte IPv6 path.
	MaxChunk = 1024
	// MaxTemplate bounds a whole template (MaxChunks chunks of MaxChunk).
	MaxChunks   = 64
	MaxTemplate = MaxChunk * MaxChunks
	// maxBye bounds a bye's reason.
	maxBye = 200
	// templateHeader is type, generation, index and count.
	templateHeader = 1 + 4 + 1 + 1
	// KeepaliveLen is the size of a keepalive or its reply.
	KeepaliveLen = 1 + 8
	// DefaultMTU is the inner MTU that fits a 1500-byte path: IPv6 (40), UDP
	// (8), the DTLS record header (13), the AES-GCM explicit nonce (8) and
	// tag (16), the message type (1), and 34 bytes to spare for tunnels on
	// the way (PPPoE, another VPN).
	DefaultMTU = 1500 - 40 - 8 - 13 - 8 - 16 - 1 - 34
)

// Errors a receiver tests for.
var (
	ErrMalformed = errors.New("l3e: malformed message")
	ErrTooLarge  = errors.New("l3e: template larger than the limit")
)

// Chunk is one piece of a template push.
type Chunk struct {
	Gen          uint32
	Index, Count int
	Data         []byte
}

// AppendChunks appends the records that carry template (JSON) as generation
// gen, each ready for one Write.
func AppendChunks(out [][]byte, gen uint32, template []byte) ([][]byte, error) {
	if len(template) > MaxTemplate {
		return out, fmt.Errorf("%w (%d bytes, at most %d)", ErrTooLarge, len(template), MaxTemplate)
	}
	count := max(1, (len(template)+MaxChunk-1)/MaxChunk)
	for i := range count {
		part := template[min(i*MaxChunk, len(template)):min((i+1)*MaxChunk, len(template))]
		rec := make([]byte, templateHeader, templateHeader+len(part))
		rec[0] = TypeTemplate
		binary.BigEndian.PutUint32(rec[1:], gen)
		rec[5], rec[6] = byte(i), byte(count)
		out = append(out, append(rec, part...))
	}
	return out, nil
}

// ParseChunk reads a template record (its type byte included).
func ParseChunk(rec []byte) (Chunk, error) {
	if len(rec) < templateHeader || rec[0] != TypeTemplate {
		return Chunk{}, fmt.Errorf("%w: template record of %d bytes", ErrMalformed, len(rec))
	}
	c := Chunk{Gen: binary.BigEndian.Uint32(rec[1:]), Index: int(rec[5]), Count: int(rec[6]),
		Data: rec[templateHeader:]}
	if c.Count == 0 || c.Count > MaxChunks || c.Index >= c.Count || len(c.Data) > MaxChunk {
		return Chunk{}, fmt.Errorf("%w: template chunk %d of %d, %d bytes", ErrMalformed, c.Index, c.Count, len(c.Data))
	}
	return c, nil
}

// Assembler joins template chunks. A chunk of a new generation starts over:
// pushes are whole and a newer one replaces an unfinished older one.
type Assembler struct {
	gen    uint32
	count  int
	have   int
	chunks [][]byte
}

// Add takes one template record and returns the whole template once its last
// chunk has arrived, else nil.
func (a *Assembler) Add(rec []byte) ([]byte, error) {
	c, err := ParseChunk(rec)
	if err != nil {
		return nil, err
	}
	if a.chunks == nil || c.Gen != a.gen || c.Count != a.count {
		a.gen, a.count, a.have = c.Gen, c.Count, 0
		a.chunks = make([][]byte, c.Count)
	}
	if a.chunks[c.Index] == nil {
		a.chunks[c.Index] = append([]byte{}, c.Data...)
		a.have++
	}
	if a.have < a.count {
		return nil, nil
	}
	var whole []byte
	for _, p := range a.chunks {
		whole = append(whole, p...)
	}
	a.chunks = nil
	return whole, nil
}

// Keepalive returns a keepalive record carrying nonce.
func Keepalive(nonce uint64) []byte {
	b := make([]byte, KeepaliveLen)
	b[0] = TypeKeepalive
	binary.BigEndian.PutUint64(b[1:], nonce)
	return b
}

// KeepaliveReply answers the keepalive rec (type byte included).
func KeepaliveReply(rec []byte) ([]byte, error) {
	if len(rec) != KeepaliveLen || rec[0] != TypeKeepalive {
		return nil, fmt.Errorf("%w: keepalive of %d bytes", ErrMalformed, len(rec))
	}
	b := append([]byte{}, rec...)
	b[0] = TypeKeepaliveReply
	return b, nil
}

// Bye returns a bye record with reason (cut to its limit).
func Bye(reason string) []byte {
	if len(reason) > maxBye {
		reason = reason[:maxBye]
	}
	return append([]byte{TypeBye}, reason...)
}
