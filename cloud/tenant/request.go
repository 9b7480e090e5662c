package tenant

import (
	"encoding/pem"
	"errors"
	"strings"
	"unicode"
)

// Checks of what a device sends with an enrollment, before anything is signed.

// decodeCSRPEM extracts the DER of one PEM CSR.
func decodeCSRPEM(s string) ([]byte, error) {
	b, rest := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New(`csr must be one PEM "CERTIFICATE REQUEST" block`)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("csr has data after the PEM block")
	}
	return b.Bytes, nil
}

// checkDeviceName accepts what a person would call a machine: 1-128 printable
// characters.
func checkDeviceName(s string) error {
	if s == "" || len(s) > 128 {
		return errors.New("device_name must be 1 to 128 characters")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return errors.New("device_name has a non-printable character")
		}
	}
	return nil
}

// truncate shortens a value a client sent, for an error message or a log.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
