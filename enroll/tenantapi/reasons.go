package tenantapi

// Machine-readable reasons carried by tenant API errors ({"error", "reason"})
// and the PoP's refusals; the agent's own failures add theirs (enroll.Reason…).
// They are a public contract: scripts and ztdiag match them.
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
	ReasonBadUserKey         = "bad_user_key"
	ReasonInvitationUsed     = "invitation_used"
	ReasonInvitationExpired  = "invitation_expired"
	ReasonBadIdPCode         = "bad_authorization_code"
	ReasonBadAdminToken      = "bad_admin_token"
	ReasonUnknownDevice      = "unknown_device"
	ReasonNoOverrideKey      = "no_override_key"
	ReasonConfigTooLarge     = "config_too_large"
	ReasonDeviceKeyInUse     = "device_key_in_use"
)
