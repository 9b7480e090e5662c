package tenantapi

import (
	"crypto/subtle"
	"encoding/json"
)

// Secret is a string that must never reach a log line, an error or ztdiag output:
// it prints as "[redacted]" however it is formatted or marshalled to JSON. Compare
// secrets with Equal, which takes constant time.
type Secret string

const redacted = "[redacted]"

// String redacts s.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString redacts s for %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON redacts s, so that a Secret inside a logged or dumped struct stays
// secret. Wire envelopes carry tokens as plain strings, never as Secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Equal reports whether s equals t, in time independent of where they differ.
func (s Secret) Equal(t string) bool {
	return subtle.ConstantTimeCompare([]byte(s), []byte(t)) == 1
}
