package tenantapi

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Encrypted initial config. When the token set that authorised an enrollment
// has an encryption token, the tenant seals the config it returns with the
// enrollment, on top of TLS, so that a TLS-intercepting proxy (or a log of
// response bodies) does not learn the device's private apps:
//
//	key   = HKDF-SHA256(secret = encryption token, salt = sealSalt, info = sealInfo), 32 bytes
//	nonce = 12 random bytes
//	aad   = "ztagent initial config|" + tenant + "|" + device_id
//	box   = AES-256-GCM(key, nonce, JSON(AgentConfig), aad)
//
// The AAD binds the ciphertext to the device it was issued to, so it cannot be
// replayed into another enrollment's answer.
const (
	sealAlg  = "A256GCM-HKDF-SHA256"
	sealSalt = "ztagent enroll encryption token v1"
	sealInfo = "initial config AES-256-GCM key"
	sealAAD  = "ztagent initial config|"
)

// SealedConfig is the wire form of an encrypted initial config.
type SealedConfig struct {
	Alg        string `json:"alg"`
	Nonce      string `json:"nonce"`      // base64 (standard, padded)
	Ciphertext string `json:"ciphertext"` // base64, GCM tag included
}

// ErrSealOpen is every failure to open a sealed config with a given token:
// wrong token, tampered box or a box for another device look the same.
var ErrSealOpen = errors.New("initial config does not decrypt with this encryption token")

func sealKey(token string) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(token), []byte(sealSalt), sealInfo, 32)
}

func sealAEAD(token string) (cipher.AEAD, error) {
	key, err := sealKey(token)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SealConfig encrypts plain (the config's JSON) for tenant/deviceID with token.
func SealConfig(token, tenant, deviceID string, plain []byte) (*SealedConfig, error) {
	aead, err := sealAEAD(token)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	box := aead.Seal(nil, nonce, plain, []byte(sealAAD+tenant+"|"+deviceID))
	return &SealedConfig{Alg: sealAlg, Nonce: base64.StdEncoding.EncodeToString(nonce),
		Ciphertext: base64.StdEncoding.EncodeToString(box)}, nil
}

// sealTagSize is what AES-GCM adds to the plaintext.
const sealTagSize = 16

// OpenConfig decrypts and decodes a sealed config. A wrong token is ErrSealOpen;
// a malformed envelope is another error naming the field.
func OpenConfig(s *SealedConfig, token, tenant, deviceID string) (*AgentConfig, error) {
	if s.Alg != sealAlg {
		return nil, fmt.Errorf("sealed config uses algorithm %.40q, want %s", s.Alg, sealAlg)
	}
	nonce, err := base64.StdEncoding.DecodeString(s.Nonce)
	if err != nil || len(nonce) != 12 {
		return nil, errors.New("sealed config has a malformed nonce")
	}
	box, err := base64.StdEncoding.DecodeString(s.Ciphertext)
	switch {
	case err == nil && len(box) > MaxConfigBody+sealTagSize:
		return nil, fmt.Errorf("sealed config is larger than %d bytes", MaxConfigBody)
	case err != nil || len(box) < sealTagSize:
		return nil, errors.New("sealed config has a malformed ciphertext")
	}
	aead, err := sealAEAD(token)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, box, []byte(sealAAD+tenant+"|"+deviceID))
	if err != nil {
		return nil, ErrSealOpen
	}
	var cfg AgentConfig
	if err := json.Unmarshal(plain, &cfg); err != nil {
		return nil, fmt.Errorf("sealed config decrypts to malformed JSON: %w", err)
	}
	return &cfg, nil
}
