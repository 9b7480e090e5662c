// Package enroll is how a device becomes a member of a tenant and learns what it
// may reach, on both ends of the wire. On the tenant side it loads the tenant file
// (users, apps, publishers, steering profiles, access policy), runs the tenant CA
// that signs device and publisher certificates, and serves the tenant API
// (enrollment by UPN, email invitation and its own IdP sign-in page, secure
// enrollment tokens, encrypted initial config, certificate renewal, config over
// mutual TLS); the PoP asks it whether a flow is allowed. On the agent side it
// parses install parameters and merges them with MDM settings, enrolls with a
// device key that never leaves the device (UPN, userkey=, or the browser with
// PKCE), persists the resulting identity atomically with a last good copy,
// renews it before expiry and fetches the config with ETag polling. Both sides share the JSON envelopes defined here,
// so the wire format has exactly one definition. Every failure the agent can meet
// is turned into one sentence that names the cause and the fix.
package enroll

import (
	"errors"
)

// Machine-readable reasons of the agent's own failures, in *Error beside the
// tenant's (tenantapi.Reason…). They are a public contract: scripts and ztdiag
// match them.
const (
	ReasonUnreachable        = "tenant_unreachable"
	ReasonUntrustedCert      = "untrusted_certificate"
	ReasonBadResponse        = "bad_response"
	ReasonUnsupportedInstall = "unsupported_install_mode"
	ReasonBadParameter       = "bad_parameter"
	ReasonSignInFailed       = "sign_in_failed"
	ReasonEncryptionRequired = "encryption_token_required"
	ReasonBadEncryptionToken = "bad_encryption_token"
	ReasonEncryptionNotUsed  = "encryption_token_not_used"
)

// Errors callers test with errors.Is.
var (
	// ErrNotEnrolled: the state directory holds no identity; enroll first.
	ErrNotEnrolled = errors.New("device is not enrolled")
	// ErrCorruptIdentity: the identity file exists but cannot be trusted.
	ErrCorruptIdentity = errors.New("identity file is corrupt")
	// ErrNotModified: the config has not changed since the given ETag.
	ErrNotModified = errors.New("config not modified")
)
