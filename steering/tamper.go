package steering

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Tamper protection: the tenant may set client.tamper_password, the hash of
// a password an administrator must give to turn steering off on a device
// (`ztdiag -t disable --password P`). The hash is PBKDF2-SHA256 in the form
// pbkdf2-sha256$ITERATIONS$SALT$KEY (salt and key in unpadded base64), as
// `ztdiag tamper-hash` prints it: the config reaches every device, so it
// carries no password, and the agent links no bcrypt.

const (
	tamperHashScheme = "pbkdf2-sha256"
	// TamperHashIterations is the work factor HashTamperPassword uses.
	TamperHashIterations = 600_000
	minTamperIterations  = 100_000
	tamperKeyLen         = 32
)

// ErrTamperPassword is CheckTamperPassword's answer to a wrong password.
var ErrTamperPassword = errors.New("wrong tamper-protection password")

// HashTamperPassword returns the client.tamper_password value for password.
func HashTamperPassword(password string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, password, salt, TamperHashIterations, tamperKeyLen)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", tamperHashScheme, TamperHashIterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

type tamperHash struct {
	iter      int
	salt, key []byte
}

func parseTamperHash(s string) (tamperHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 || parts[0] != tamperHashScheme {
		return tamperHash{}, errors.New("must be pbkdf2-sha256$ITERATIONS$SALT$KEY, as `ztdiag tamper-hash` prints it")
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < minTamperIterations || iter > 10*TamperHashIterations {
		return tamperHash{}, fmt.Errorf("iterations %q: want %d to %d", parts[1], minTamperIterations, 10*TamperHashIterations)
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	key, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) != tamperKeyLen {
		return tamperHash{}, fmt.Errorf("salt (8 bytes or more) or key (%d bytes) is not valid unpadded base64", tamperKeyLen)
	}
	return tamperHash{iter: iter, salt: salt, key: key}, nil
}

// CheckTamperPassword reports whether password matches hash (a valid
// client.tamper_password), in time independent of where they differ.
func CheckTamperPassword(hash, password string) error {
	h, err := parseTamperHash(hash)
	if err != nil {
		return fmt.Errorf("client.tamper_password: %w", err)
	}
	key, err := pbkdf2.Key(sha256.New, password, h.salt, h.iter, tamperKeyLen)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(key, h.key) != 1 {
		return ErrTamperPassword
	}
	return nil
}
