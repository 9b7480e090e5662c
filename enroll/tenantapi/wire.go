// Package tenantapi is the tenant API's wire format, the one definition that
// the device side (enroll), the publisher's enrollment (cloud/publisher) and
// the tenant server (cloud/tenant) share: the JSON envelopes and their limits,
// the config an agent receives, the error body and its reasons, the identity a
// certificate carries, the sealed initial config, and the few checks and key
// helpers both ends of an enrollment need. It is a leaf: the standard library
// and steering only.
package tenantapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The tenant API's JSON envelopes. Requests are decoded strictly by the tenant
// (unknown fields, trailing data and oversized bodies are errors); responses are
// decoded leniently by the agent so that a newer tenant may add fields without
// breaking older agents. Tokens travel as plain strings inside TLS; the structs
// are never logged.

// UPNEnrollRequest is POST /v1/enroll/upn.
type UPNEnrollRequest struct {
	OrgKey          string `json:"org_key"`
	UPN             string `json:"upn"`
	DeviceName      string `json:"device_name"`
	CSR             string `json:"csr"` // PEM "CERTIFICATE REQUEST"
	EnrollAuthToken string `json:"enroll_auth_token,omitempty"`
}

// PublisherEnrollRequest is POST /v1/publishers/enroll.
type PublisherEnrollRequest struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	CSR   string `json:"csr"`
}

// EnrollResponse answers every enrollment and renewal.
type EnrollResponse struct {
	DeviceID    string `json:"device_id,omitempty"`
	Certificate string `json:"certificate"` // PEM
	CA          string `json:"ca"`          // PEM, the tenant CA
	Tenant      string `json:"tenant"`
	User        string `json:"user,omitempty"`
	Publisher   string `json:"publisher,omitempty"`
	// PoP is where a publisher dials; devices learn it from their config.
	PoP *PoPInfo `json:"pop,omitempty"`
	// A device enrollment carries the initial config, in the clear (inside TLS)
	// or, when the token set has an encryption token, sealed (see seal.go).
	Config       json.RawMessage `json:"config,omitempty"`
	SealedConfig *SealedConfig   `json:"sealed_config,omitempty"`
}

// InviteEnrollRequest is POST /v1/enroll/invite.
type InviteEnrollRequest struct {
	UserKey         string `json:"user_key"`
	DeviceName      string `json:"device_name"`
	CSR             string `json:"csr"`
	EnrollAuthToken string `json:"enroll_auth_token,omitempty"`
}

// IdPTokenRequest is POST /v1/idp/token.
type IdPTokenRequest struct {
	ClientID        string `json:"client_id"`
	Code            string `json:"code"`
	CodeVerifier    string `json:"code_verifier"`
	RedirectURI     string `json:"redirect_uri"`
	DeviceName      string `json:"device_name"`
	CSR             string `json:"csr"`
	EnrollAuthToken string `json:"enroll_auth_token,omitempty"`
}

// RenewRequest is POST /v1/renew.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// InviteRequest is POST /v1/admin/invitations.
type InviteRequest struct {
	UPN  string `json:"upn"`
	Days int    `json:"days,omitempty"`
}

// InviteResponse answers POST /v1/admin/invitations: the key to send the user.
type InviteResponse struct {
	UPN     string    `json:"upn"`
	UserKey string    `json:"user_key"`
	Expires time.Time `json:"expires"`
}

// String redacts the key, for logs.
func (r InviteResponse) String() string {
	return "invitation for " + r.UPN + " (user key " + Secret(r.UserKey).String() + ", expires " +
		r.Expires.UTC().Format(time.DateOnly) + ")"
}

// Error is every non-2xx body: {"error": sentence, "reason": code}.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Reason  string `json:"reason"`
}

func (e *Error) Error() string { return e.Message }

// Body limits. A CSR is about 500 bytes of PEM; a config for 10,000 apps is a few
// MiB.
const (
	MaxRequestBody = 64 << 10
	MaxConfigBody  = 16 << 20
	MaxErrorBody   = 4 << 10
)

// DecodeStrict decodes exactly one JSON value from r into v, rejecting unknown
// fields and anything after the value.
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body")
		}
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON: data after the object")
	}
	return nil
}
