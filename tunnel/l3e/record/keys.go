package record

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/gob"
	"fmt"
	"hash"

	"github.com/pion/dtls/v2"
	"github.com/pion/dtls/v2/pkg/crypto/prf"
)

// Keys are one association's record keys, as its handshake left them.
type Keys struct {
	Suite dtls.CipherSuiteID
	// Epoch is the epoch both ends write in after the handshake.
	Epoch uint16
	// Seq is pion's next sequence number in Epoch when the keys were taken.
	Seq               uint64
	WriteKey, WriteIV []byte
	ReadKey, ReadIV   []byte
	IsClient          bool
}

// pionState mirrors the exported fields of the gob pion's
// State.MarshalBinary writes (dtls/v2 state.go serializedState); gob matches
// fields by name and skips the others.
type pionState struct {
	LocalEpoch, RemoteEpoch   uint16
	LocalRandom, RemoteRandom [32]byte
	CipherSuiteID             uint16
	MasterSecret              []byte
	SequenceNumber            uint64
	IsClient                  bool
}

// suites are the AES-GCM suites: key length and PRF hash.
var suites = map[dtls.CipherSuiteID]struct {
	keyLen int
	hash   func() hash.Hash
}{
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: {16, sha256.New},
	dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:   {16, sha256.New},
	dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: {32, sha512.New384},
	dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:   {32, sha512.New384},
}

// KeysOf derives the record keys of conn, whose handshake is complete, from
// its master secret and randoms (RFC 5246 §6.3 key block: client write key,
// server write key, client IV, server IV).
func KeysOf(conn *dtls.Conn) (Keys, error) {
	st := conn.ConnectionState()
	raw, err := st.MarshalBinary()
	if err != nil {
		return Keys{}, fmt.Errorf("record: connection state: %w", err)
	}
	return keysOfState(raw)
}

func keysOfState(raw []byte) (Keys, error) {
	var ps pionState
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&ps); err != nil {
		return Keys{}, fmt.Errorf("record: connection state: %w", err)
	}
	id := dtls.CipherSuiteID(ps.CipherSuiteID)
	suite, ok := suites[id]
	switch {
	case !ok:
		return Keys{}, fmt.Errorf("record: cipher suite %#04x is not AES-GCM", ps.CipherSuiteID)
	case ps.LocalEpoch == 0 || ps.LocalEpoch != ps.RemoteEpoch || len(ps.MasterSecret) == 0:
		return Keys{}, fmt.Errorf("record: handshake not complete (epochs %d/%d)", ps.LocalEpoch, ps.RemoteEpoch)
	}
	client, server := ps.LocalRandom[:], ps.RemoteRandom[:]
	if !ps.IsClient {
		client, server = server, client
	}
	kb, err := prf.GenerateEncryptionKeys(ps.MasterSecret, client, server, 0, suite.keyLen, 4, suite.hash)
	if err != nil {
		return Keys{}, fmt.Errorf("record: key block: %w", err)
	}
	k := Keys{Suite: id, Epoch: ps.LocalEpoch, Seq: ps.SequenceNumber, IsClient: ps.IsClient,
		WriteKey: kb.ClientWriteKey, WriteIV: kb.ClientWriteIV, ReadKey: kb.ServerWriteKey, ReadIV: kb.ServerWriteIV}
	if !ps.IsClient {
		k.WriteKey, k.WriteIV, k.ReadKey, k.ReadIV = kb.ServerWriteKey, kb.ServerWriteIV, kb.ClientWriteKey, kb.ClientWriteIV
	}
	return k, nil
}

// Sealer returns the sealer of k's write direction, from pion's sequence
// number plus SeqBase on.
func (k Keys) Sealer() (*Sealer, error) {
	return NewSealer(k.WriteKey, k.WriteIV, k.Epoch, k.Seq+SeqBase)
}

// Opener returns the opener of k's read direction.
func (k Keys) Opener() (*Opener, error) { return NewOpener(k.ReadKey, k.ReadIV, k.Epoch) }

// Both returns the sealer and the opener of k, as Sealer and Opener do.
func (k Keys) Both() (*Sealer, *Opener, error) {
	s, err := k.Sealer()
	if err != nil {
		return nil, nil, err
	}
	o, err := k.Opener()
	if err != nil {
		return nil, nil, err
	}
	return s, o, nil
}

// String names the suite and epoch, never the keys.
func (k Keys) String() string {
	return fmt.Sprintf("%s epoch %d", k.Suite, k.Epoch)
}
