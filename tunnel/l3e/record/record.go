// Package record is the L3E data path's DTLS 1.2 record layer for the AES-GCM
// suites, driven with the keys of an association whose handshake pion/dtls
// made: standard records (RFC 6347 §4.1, RFC 5288), so any DTLS 1.2 peer reads
// them, but sealed in place into the caller's buffers and opened in place out
// of them, with none of pion's per-record goroutines, copies and allocations.
//
// A record is the 13-byte header (type 23 application data, version fefd,
// epoch, 48-bit sequence number, length), the 8-byte explicit nonce (here the
// epoch and sequence number, as RFC 5288 suggests), the AES-GCM ciphertext
// and its 16-byte tag; the GCM nonce is the 4-byte implicit IV of the writer
// then the explicit nonce, and the additional data is epoch|seq, type,
// version and the plaintext length (RFC 5246 §6.2.3.3). An Opener drops what
// is truncated, of another epoch, replayed (a sliding window of Window
// records, RFC 6347 §4.1.2.6) or fails authentication, each with its own
// error so the caller counts it.
//
// Our sequence numbers start at pion's plus SeqBase: pion keeps writing a few
// records of its own with the same key (handshake retransmissions, alerts),
// and a nonce must never repeat. A record whose sequence number is below
// SeqBase came from the peer's pion and goes to the local pion (Ours).
package record

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Sizes of a record.
const (
	// HeaderLen is type, version, epoch, sequence number and length.
	HeaderLen = 13
	// NonceLen is the explicit nonce after the header.
	NonceLen = 8
	// Prefix is the room Seal needs before the plaintext.
	Prefix = HeaderLen + NonceLen
	// TagLen is the GCM tag after the ciphertext.
	TagLen = 16
	// Overhead is what a record adds to its plaintext.
	Overhead = Prefix + TagLen
	// TypeApplicationData is the only content type this layer seals or opens.
	TypeApplicationData = 23
	// SeqBase is how far above pion's sequence numbers ours start.
	SeqBase = 1 << 32
	// maxSeq is the largest 48-bit sequence number.
	maxSeq = 1<<48 - 1
)

// version is DTLS 1.2 on the wire.
const versionMajor, versionMinor = 0xfe, 0xfd

// Why Open refused a record.
var (
	ErrTruncated  = errors.New("record: truncated")
	ErrNotData    = errors.New("record: not an application data record of DTLS 1.2")
	ErrWrongEpoch = errors.New("record: wrong epoch")
	ErrReplayed   = errors.New("record: replayed or too old")
	ErrForged     = errors.New("record: authentication failed")
	ErrExhausted  = errors.New("record: sequence numbers exhausted")
)

// Header is what Peek reads of a record.
type Header struct {
	Type  byte
	Epoch uint16
	Seq   uint64
	// Len is the length field: the bytes after the header.
	Len int
}

// Peek reads the header of the first record of datagram d; ok is false when
// d is shorter than a header.
func Peek(d []byte) (h Header, ok bool) {
	if len(d) < HeaderLen {
		return Header{}, false
	}
	return Header{Type: d[0], Epoch: binary.BigEndian.Uint16(d[3:]),
		Seq: uint64(binary.BigEndian.Uint16(d[5:]))<<32 | uint64(binary.BigEndian.Uint32(d[7:])),
		Len: int(binary.BigEndian.Uint16(d[11:]))}, true
}

// Ours reports whether datagram d starts with an application data record
// our layer wrote (its sequence number at or above SeqBase): those are for
// an Opener, which refuses what is not one whole record of its epoch,
// everything else is for pion.
func Ours(d []byte) bool {
	h, ok := Peek(d)
	return ok && h.Type == TypeApplicationData && h.Seq >= SeqBase
}

// newGCM returns the AES-GCM of key and the 4-byte implicit iv, which
// sealing and opening share.
func newGCM(key, iv []byte) (a cipher.AEAD, implicit [4]byte, err error) {
	if len(iv) != 4 {
		return nil, implicit, fmt.Errorf("record: implicit IV of %d bytes", len(iv))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, implicit, fmt.Errorf("record: %w", err)
	}
	if a, err = cipher.NewGCM(b); err != nil {
		return nil, implicit, fmt.Errorf("record: %w", err)
	}
	copy(implicit[:], iv)
	return a, implicit, nil
}

// Sealer writes one direction's records. Seal may be called from several
// goroutines at once.
type Sealer struct {
	aead  cipher.AEAD
	iv    [4]byte
	epoch uint16
	seq   atomic.Uint64 // the next sequence number
}

// NewSealer seals with key and the 4-byte implicit iv in epoch, from
// sequence number seq on.
func NewSealer(key, iv []byte, epoch uint16, seq uint64) (*Sealer, error) {
	a, implicit, err := newGCM(key, iv)
	if err != nil {
		return nil, err
	}
	s := &Sealer{aead: a, iv: implicit, epoch: epoch}
	s.seq.Store(seq)
	return s, nil
}

// Seal makes a record in place of b, whose plaintext is b[Prefix:Prefix+n]:
// the header and explicit nonce go in b[:Prefix] and the tag after the
// plaintext, so cap(b) must be at least Prefix+n+TagLen. It returns the
// record, b[:Overhead+n].
func (s *Sealer) Seal(b []byte, n int) ([]byte, error) {
	seq := s.seq.Add(1) - 1
	if seq > maxSeq {
		return nil, ErrExhausted
	}
	b = b[:Overhead+n]
	b[0], b[1], b[2] = TypeApplicationData, versionMajor, versionMinor
	putEpochSeq(b[3:], s.epoch, seq)
	binary.BigEndian.PutUint16(b[11:], uint16(NonceLen+n+TagLen))
	copy(b[HeaderLen:], b[3:11]) // the explicit nonce is epoch|seq
	sc := sealScratchPool.Get().(*sealScratch)
	copy(sc.nonce[:], s.iv[:])
	copy(sc.nonce[4:], b[3:11])
	sc.aad = additionalData(b[3:11], n)
	s.aead.Seal(b[Prefix:Prefix], sc.nonce[:], b[Prefix:Prefix+n], sc.aad[:])
	sealScratchPool.Put(sc)
	return b, nil
}

// SealCopy seals a copy of msg (a control message, off the data path) into
// a record of its own in a new buffer.
func (s *Sealer) SealCopy(msg []byte) ([]byte, error) {
	b := make([]byte, Prefix+len(msg), Overhead+len(msg))
	copy(b[Prefix:], msg)
	return s.Seal(b, len(msg))
}

// sealScratch holds a Seal's nonce and additional data. Arrays on Seal's
// stack would escape through the AEAD interface (two allocations per
// record); the Opener keeps its own, but Seal runs on several goroutines at
// once, so each call borrows one from a pool.
type sealScratch struct {
	nonce [12]byte
	aad   [13]byte
}

var sealScratchPool = sync.Pool{New: func() any { return new(sealScratch) }}

func putEpochSeq(b []byte, epoch uint16, seq uint64) {
	binary.BigEndian.PutUint16(b, epoch)
	binary.BigEndian.PutUint16(b[2:], uint16(seq>>32))
	binary.BigEndian.PutUint32(b[4:], uint32(seq))
}

// additionalData is RFC 5246 §6.2.3.3's: epoch|seq, type, version, length.
func additionalData(epochSeq []byte, n int) [13]byte {
	var a [13]byte
	copy(a[:8], epochSeq)
	a[8], a[9], a[10] = TypeApplicationData, versionMajor, versionMinor
	binary.BigEndian.PutUint16(a[11:], uint16(n))
	return a
}

// Opener reads the peer's records of one epoch. It is not safe for
// concurrent use: one goroutine receives.
type Opener struct {
	aead  cipher.AEAD
	iv    [4]byte
	epoch uint16
	win   Window
	// nonce and aad are scratch: slices of the Opener's own arrays do not
	// make an allocation per record through the AEAD interface.
	nonce [12]byte
	aad   [13]byte
}

// NewOpener opens records of epoch sealed with key and the implicit iv.
func NewOpener(key, iv []byte, epoch uint16) (*Opener, error) {
	a, implicit, err := newGCM(key, iv)
	if err != nil {
		return nil, err
	}
	return &Opener{aead: a, iv: implicit, epoch: epoch}, nil
}

// Open authenticates and decrypts the one record that is all of d, in
// place, and returns its plaintext (d[Prefix:Prefix+n]). A record it refuses
// leaves the window as it was.
func (o *Opener) Open(d []byte) ([]byte, error) {
	h, ok := Peek(d)
	switch {
	case !ok || len(d) < Overhead || HeaderLen+h.Len > len(d):
		return nil, ErrTruncated
	case h.Type != TypeApplicationData || d[1] != versionMajor || d[2] != versionMinor ||
		HeaderLen+h.Len != len(d) || h.Len < NonceLen+TagLen:
		return nil, ErrNotData
	case h.Epoch != o.epoch:
		return nil, ErrWrongEpoch
	case !o.win.Check(h.Seq):
		return nil, ErrReplayed
	}
	n := h.Len - NonceLen - TagLen
	copy(o.nonce[:], o.iv[:])
	copy(o.nonce[4:], d[HeaderLen:Prefix])
	o.aad = additionalData(d[3:11], n)
	p, err := o.aead.Open(d[Prefix:Prefix], o.nonce[:], d[Prefix:], o.aad[:])
	if err != nil {
		return nil, ErrForged
	}
	o.win.Mark(h.Seq)
	return p, nil
}
