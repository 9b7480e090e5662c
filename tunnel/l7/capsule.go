package l7

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// The capsule protocol (RFC 9297) as connect-udp (RFC 9298) uses it: a stream's
// data is a sequence of capsules, each a type and a length (QUIC variable-length
// integers, RFC 9000 §16) and that many bytes of value. A DATAGRAM capsule
// (type 0x00) holds a context ID (a varint; 0 for a UDP payload) and one UDP
// payload, so datagram boundaries survive the byte stream. Capsules of other
// types and datagrams of other context IDs are skipped, as the RFCs require.

const (
	capsuleDatagram = 0x00
	// contextUDP is the context ID of a UDP payload (RFC 9298 §4).
	contextUDP = 0
	// MaxDatagram is the largest UDP payload carried: an IPv6 datagram's
	// 65,535 bytes less the UDP header (jumbograms aside).
	MaxDatagram = 1<<16 - 1 - 8
	// maxCapsuleHeader is the longest header AppendDatagram writes: the type
	// (1 byte), a length up to MaxDatagram+1 (4 bytes) and the context ID (1).
	maxCapsuleHeader = 6
	maxVarint        = 1<<62 - 1
)

var (
	// ErrDatagramTooLarge is returned for a datagram above MaxDatagram, which
	// is dropped.
	ErrDatagramTooLarge = fmt.Errorf("l7: datagram larger than %d bytes", MaxDatagram)
	// ErrMalformedCapsule ends a datagram stream whose peer broke the framing.
	ErrMalformedCapsule = errors.New("l7: malformed capsule")
)

// appendVarint appends v (at most maxVarint) in the shortest encoding.
func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, 0x40|byte(v>>8), byte(v))
	case v < 1<<30:
		return append(b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, 0xc0|byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// AppendDatagram appends p as one DATAGRAM capsule of context ID 0.
func AppendDatagram(b, p []byte) ([]byte, error) {
	if len(p) > MaxDatagram {
		return b, ErrDatagramTooLarge
	}
	b = append(b, capsuleDatagram)
	b = appendVarint(b, uint64(len(p))+1) // the context ID takes one byte
	b = append(b, contextUDP)
	return append(b, p...), nil
}

// capsuleReader reads capsules from a byte stream through a buffer it
// borrows while bytes wait in it and gives back once they are read, so that
// a burst of small capsules costs one Read of the stream (on the server side
// each Read is a hand-off to the connection's goroutine) and an idle flow
// holds no buffer.
type capsuleReader struct {
	r    io.Reader
	bp   *[]byte // borrowed from readBufs while b holds bytes
	b    []byte  // read from r, not yet consumed
	hdr  [8]byte
	left uint64 // what remains of the capsule being read: value bytes not yet consumed
}

// readBufs lend capsuleReaders their buffers.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// buffered reports whether bytes wait in the reader.
func (cr *capsuleReader) buffered() bool { return len(cr.b) > 0 }

// fill reads what the stream has into an empty buffer.
func (cr *capsuleReader) fill() error {
	if cr.bp == nil {
		cr.bp = readBufs.Get().(*[]byte)
	}
	n, err := cr.r.Read(*cr.bp)
	cr.b = (*cr.bp)[:n]
	if n == 0 {
		cr.release()
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	return nil
}

// release gives the buffer back once it is drained.
func (cr *capsuleReader) release() {
	if len(cr.b) == 0 && cr.bp != nil {
		readBufs.Put(cr.bp)
		cr.bp, cr.b = nil, nil
	}
}

// readFull fills p from the buffer and the stream.
func (cr *capsuleReader) readFull(p []byte) error {
	for len(p) > 0 {
		if len(cr.b) == 0 {
			if err := cr.fill(); err != nil {
				return err
			}
		}
		n := copy(p, cr.b)
		cr.b, p = cr.b[n:], p[n:]
	}
	cr.release()
	return nil
}

// readVarint reads one varint. atStart says it begins a capsule, where the
// end of the stream is a clean io.EOF.
func (cr *capsuleReader) readVarint(atStart bool) (uint64, error) {
	if err := cr.readFull(cr.hdr[:1]); err != nil {
		if !atStart {
			err = unexpected(err)
		}
		return 0, err
	}
	n := 1 << (cr.hdr[0] >> 6)
	if n > 1 {
		if err := cr.readFull(cr.hdr[1:n]); err != nil {
			return 0, unexpected(err)
		}
	}
	v := uint64(cr.hdr[0] & 0x3f)
	for _, c := range cr.hdr[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// skip discards the rest of the current capsule.
func (cr *capsuleReader) skip() error {
	for cr.left > 0 {
		if len(cr.b) == 0 {
			if err := cr.fill(); err != nil {
				return unexpected(err)
			}
		}
		n := min(cr.left, uint64(len(cr.b)))
		cr.b, cr.left = cr.b[n:], cr.left-n
	}
	cr.release()
	return nil
}

// readDatagram reads capsules until a DATAGRAM of context ID 0 and copies its
// payload into p, truncating it if p is shorter. Datagrams above MaxDatagram
// are skipped and counted in *dropped; so are other context IDs and capsule
// types, which this end does not use. It returns io.EOF at the end of the
// stream between capsules, io.ErrUnexpectedEOF within one, and
// ErrMalformedCapsule for a DATAGRAM capsule too short for its context ID.
func (cr *capsuleReader) readDatagram(p []byte, dropped *uint64) (int, error) {
	for {
		typ, err := cr.readVarint(true)
		if err != nil {
			return 0, err
		}
		if cr.left, err = cr.readVarint(false); err != nil {
			return 0, err
		}
		if typ != capsuleDatagram {
			if err := cr.skip(); err != nil {
				return 0, err
			}
			continue
		}
		if cr.left == 0 {
			return 0, fmt.Errorf("%w: empty DATAGRAM capsule", ErrMalformedCapsule)
		}
		length := cr.left
		ctxID, err := cr.readVarint(false)
		if err != nil {
			return 0, err
		}
		idLen := uint64(1) << (cr.hdr[0] >> 6)
		if idLen > length {
			return 0, fmt.Errorf("%w: context ID longer than its capsule", ErrMalformedCapsule)
		}
		cr.left = length - idLen
		if ctxID != contextUDP || cr.left > MaxDatagram {
			if ctxID == contextUDP {
				*dropped++
			}
			if err := cr.skip(); err != nil {
				return 0, err
			}
			continue
		}
		n := int(min(cr.left, uint64(len(p))))
		if err := cr.readFull(p[:n]); err != nil {
			return 0, unexpected(err)
		}
		cr.left -= uint64(n)
		if err := cr.skip(); err != nil { // what did not fit in p
			return 0, err
		}
		return n, nil
	}
}

// capsuleBufs hold one capsule being written: header and largest payload.
var capsuleBufs = sync.Pool{New: func() any { b := make([]byte, 0, maxCapsuleHeader+MaxDatagram); return &b }}
