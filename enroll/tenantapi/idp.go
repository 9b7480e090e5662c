package tenantapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// IdPClientID is the OAuth client_id of the agent on the tenant's sign-in
// page (RFC 8252 native app).
const IdPClientID = "ztagent"

// PKCES256 is BASE64URL(SHA256(verifier)), RFC 7636 section 4.2.
func PKCES256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// RandomB64URL is n random bytes in base64url without padding: PKCE
// verifiers, states and authorization codes.
func RandomB64URL(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
