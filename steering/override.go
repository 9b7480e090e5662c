package steering

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Tamper override codes: the tenant may set client.tamper_override_key, an
// Ed25519 public key ("ed25519:" and the key in unpadded base64). Whoever
// holds the private key (the tenant's administrators: `ztdiag tamper-key`
// makes a pair, `ztdiag tamper-code` issues a code) issues a one-time code
// that lets an administrator turn steering off on one device until the
// code's expiry (`ztdiag -t disable --code C`), after which the agent turns
// steering on again by itself. The agent checks a code offline: the code is
// the expiry and a signature of (device ID, expiry) under the private key,
// so the config that reaches every device holds nothing that mints codes,
// and a code works on the device it names only. The agent keeps the codes
// it accepted until they expire, so each works once.
//
// A code is unpadded base64url of: version (1 byte, 1), expiry (8 bytes,
// Unix seconds, big-endian), signature (64 bytes) of
// "ztagent tamper override v1\x00" + device ID + "\x00" + the 8 expiry bytes.

const (
	overrideKeyPrefix = "ed25519:"
	overrideVersion   = 1
	overrideCodeLen   = 1 + 8 + ed25519.SignatureSize
	overrideContext   = "ztagent tamper override v1\x00"
	// MaxOverrideValidity bounds how far ahead of the device's clock a
	// code's expiry may lie: a code (or a key leaked with a bad clock)
	// never turns steering off for longer.
	MaxOverrideValidity = 7 * 24 * time.Hour
)

// Errors of CheckTamperOverride.
var (
	ErrOverrideCode    = errors.New("invalid tamper override code (not issued for this device by the tenant's key)")
	ErrOverrideExpired = errors.New("the tamper override code has expired")
)

// NewTamperOverrideKey makes a key pair: the client.tamper_override_key
// value, and the private key (unpadded base64 of its 32-byte seed) that
// issues codes.
func NewTamperOverrideKey() (public, private string) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	enc := base64.RawStdEncoding
	return overrideKeyPrefix + enc.EncodeToString(pub), enc.EncodeToString(priv.Seed())
}

func parseOverrideKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(s, overrideKeyPrefix)
	key, err := base64.RawStdEncoding.DecodeString(b64)
	if !ok || err != nil || len(key) != ed25519.PublicKeySize {
		return nil, errors.New(`must be "ed25519:" and a 32-byte public key in unpadded base64, as ` + "`ztdiag tamper-key`" + ` prints it`)
	}
	return ed25519.PublicKey(key), nil
}

// TamperOverridePublicKey is the client.tamper_override_key value of the
// private key NewTamperOverrideKey made.
func TamperOverridePublicKey(private string) (string, error) {
	seed, err := overrideSeed(private)
	if err != nil {
		return "", err
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return overrideKeyPrefix + base64.RawStdEncoding.EncodeToString(pub), nil
}

func overrideSeed(private string) ([]byte, error) {
	seed, err := base64.RawStdEncoding.DecodeString(strings.TrimSpace(private))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("the private key must be a 32-byte seed in unpadded base64")
	}
	return seed, nil
}

// IssueTamperOverride returns the code that turns steering off on the
// device deviceID until expiry; private is NewTamperOverrideKey's.
func IssueTamperOverride(private, deviceID string, expiry time.Time) (string, error) {
	seed, err := overrideSeed(private)
	if err != nil {
		return "", err
	}
	if deviceID == "" {
		return "", errors.New("a code needs the device ID")
	}
	code := make([]byte, 9, overrideCodeLen)
	code[0] = overrideVersion
	binary.BigEndian.PutUint64(code[1:], uint64(expiry.Unix()))
	sig := ed25519.Sign(ed25519.NewKeyFromSeed(seed), overrideMessage(deviceID, code[1:9]))
	return base64.RawURLEncoding.EncodeToString(append(code, sig...)), nil
}

func overrideMessage(deviceID string, expiry []byte) []byte {
	return append([]byte(overrideContext+deviceID+"\x00"), expiry...)
}

// CheckTamperOverride checks code against key (a valid
// client.tamper_override_key) for the device deviceID at now, and returns
// the code's expiry.
func CheckTamperOverride(key, code, deviceID string, now time.Time) (time.Time, error) {
	pub, err := parseOverrideKey(key)
	if err != nil {
		return time.Time{}, fmt.Errorf("client.tamper_override_key: %w", err)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(code))
	if err != nil || len(b) != overrideCodeLen || b[0] != overrideVersion {
		return time.Time{}, ErrOverrideCode
	}
	if !ed25519.Verify(pub, overrideMessage(deviceID, b[1:9]), b[9:]) {
		return time.Time{}, ErrOverrideCode
	}
	secs := binary.BigEndian.Uint64(b[1:9])
	if secs > 1<<40 {
		return time.Time{}, ErrOverrideCode
	}
	expiry := time.Unix(int64(secs), 0)
	switch {
	case !now.Before(expiry):
		return time.Time{}, ErrOverrideExpired
	case expiry.Sub(now) > MaxOverrideValidity:
		return time.Time{}, fmt.Errorf("%w: it expires %s, more than %v ahead (check the clock)", ErrOverrideCode, expiry.UTC().Format(time.RFC3339), MaxOverrideValidity)
	}
	return expiry, nil
}
