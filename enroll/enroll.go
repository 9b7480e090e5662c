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
	"crypto/subtle"
	"encoding/json"
	"errors"

	"github.com/ztagent/ztagent/steering"
)

// AgentConfig is everything the tenant tells one enrolled user's agent: who it
// is, which PoP to dial, and the steering configuration to apply as one snapshot.
type AgentConfig struct {
	Tenant   string          `json:"tenant"`
	User     string          `json:"user"`
	PoP      PoPInfo         `json:"pop"`
	Steering steering.Config `json:"steering"`
}

// PoPInfo says where the agent dials the L7 tunnel.
type PoPInfo struct {
	// Address is the PoP's public host:port.
	Address string `json:"address" yaml:"address"`
	// ServerName is the TLS server name the PoP's certificate carries.
	ServerName string `json:"server_name" yaml:"server_name"`
}

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

// Machine-readable reasons carried by tenant API errors ({"error", "reason"}) and
// by the agent's *Error. They are a public contract: scripts and ztdiag match them.
const (
	ReasonBadRequest         = "bad_request"
	ReasonBodyTooLarge       = "body_too_large"
	ReasonMethodNotAllowed   = "method_not_allowed"
	ReasonNotFound           = "not_found"
	ReasonBadOrgKey          = "bad_org_key"
	ReasonUnknownUser        = "unknown_user"
	ReasonBadCSR             = "bad_csr"
	ReasonBadPublisherToken  = "bad_publisher_token"
	ReasonClientCertRequired = "client_cert_required"
	ReasonWrongTenant        = "wrong_tenant"
	ReasonNotADevice         = "not_a_device"
	ReasonSecureEnrollment   = "secure_enrollment_required"
	ReasonBadAuthToken       = "bad_auth_token"
	ReasonAuthTokenExpired   = "auth_token_expired"
	ReasonAuthTokenRevoked   = "auth_token_revoked"
	ReasonInternal           = "internal_error"
	ReasonTooManyAttempts    = "too_many_attempts"
	ReasonUnknownApp         = "unknown_app"
	ReasonHostNotInApp       = "host_not_in_app"
	ReasonPortNotInApp       = "port_not_in_app"
	ReasonDeniedByPolicy     = "denied_by_policy"
	ReasonNoPublisher        = "no_publisher"
	ReasonUnreachable        = "tenant_unreachable"
	ReasonUntrustedCert      = "untrusted_certificate"
	ReasonBadResponse        = "bad_response"
	ReasonUnsupportedInstall = "unsupported_install_mode"
	ReasonBadParameter       = "bad_parameter"
	ReasonBadUserKey         = "bad_user_key"
	ReasonInvitationUsed     = "invitation_used"
	ReasonInvitationExpired  = "invitation_expired"
	ReasonBadIdPCode         = "bad_authorization_code"
	ReasonSignInFailed       = "sign_in_failed"
	ReasonBadAdminToken      = "bad_admin_token"
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
	// ErrDenied: the PoP must refuse the flow (see *DenyError for the reason).
	ErrDenied = errors.New("access denied")
)
