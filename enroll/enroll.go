// Package enroll is the device side of enrollment: how an agent becomes a
// member of a tenant and learns what it may reach. It parses install parameters
// and merges them with MDM settings, enrolls with a device key that never leaves
// the device (UPN and org key, an email invitation's userkey=, or the browser
// with PKCE; secure-enrollment tokens and the encrypted initial config
// included), persists the resulting identity atomically with a last good copy,
// renews the certificate before it expires and fetches the config with ETag
// polling. It speaks the wire format defined once in enroll/tenantapi; the
// tenant server is cloud/tenant, which the agent does not link. Every failure
// the agent can meet is turned into one sentence that names the cause and the
// fix.
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
	ReasonAnswerTooLarge     = "answer_too_large"
	ReasonAnswerLost         = "answer_lost"
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
