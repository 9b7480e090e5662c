package l3e

import (
	"errors"
	"sync/atomic"

	"github.com/pion/dtls/v2"

	"github.com/ztagent/ztagent/tunnel/l3e/record"
)

// CipherSuites are the only suites either end offers or accepts: AES-GCM with
// ECDHE (the tenant CA issues ECDSA P-256 certificates; the RSA ones are for
// foreign peers whose gateway certificate is RSA).
var CipherSuites = []dtls.CipherSuiteID{
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// RecordStats counts the records dropped without a word. Our record layer
// (tunnel/l3e/record) says why it refuses one (Count). Of the datagrams for
// pion, the truncated ones (a record header or length running past the
// datagram) are counted from the raw datagrams, since pion discards them
// before any log line; replayed records (pion's sliding window, checked
// before decryption) and records that fail authentication are counted from
// pion's own debug messages by LoggerFactory, so they are exactly pion's
// decisions.
type RecordStats struct {
	Datagrams  atomic.Uint64
	Truncated  atomic.Uint64 // truncated, or not one whole record
	Replayed   atomic.Uint64
	Forged     atomic.Uint64
	WrongEpoch atomic.Uint64
}

// Count counts a record the record layer refused with err.
func (s *RecordStats) Count(err error) {
	switch {
	case errors.Is(err, record.ErrReplayed):
		s.Replayed.Add(1)
	case errors.Is(err, record.ErrForged):
		s.Forged.Add(1)
	case errors.Is(err, record.ErrWrongEpoch):
		s.WrongEpoch.Add(1)
	default:
		s.Truncated.Add(1)
	}
}

// Truncated reports whether a datagram's records run past its end, which
// makes pion discard the whole datagram.
func Truncated(d []byte) bool {
	for len(d) > 0 {
		h, ok := record.Peek(d)
		if !ok || len(d) == record.HeaderLen {
			return true
		}
		n := record.HeaderLen + h.Len
		if n > len(d) {
			return true
		}
		d = d[n:]
	}
	return false
}
