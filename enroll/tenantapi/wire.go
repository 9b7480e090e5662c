// Package tenantapi is the tenant API's wire format, the one definition that
// the device side (enroll), the publisher's enrollment (cloud/publisher) and
// the tenant server (cloud/tenant) share: the JSON envelopes and their limits,
// the config an agent receives, the error body and its reasons, the identity a
// certificate carries, the sealed initial config, and the few checks and key
// helpers both ends of an enrollment need. It is a leaf: the standard library
// and steering only.
package tenantapi

import (
	"bytes"
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
	// PoPs, when the tenant has several, are every PoP a publisher dials
	// (PoP is one of them, for older publishers).
	PoPs []PoPInfo `json:"pops,omitempty"`
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

// OverrideCodeRequest is POST /v1/admin/override-codes: a one-time tamper
// override code for the device, valid for ValidFor (a Go duration, "4h";
// at most 7 days).
type OverrideCodeRequest struct {
	DeviceID string `json:"device_id"`
	ValidFor string `json:"valid_for"`
}

// OverrideCodeResponse answers it: the code to give the device's
// administrator (ztdiag -t disable --code C).
type OverrideCodeResponse struct {
	DeviceID string    `json:"device_id"`
	UPN      string    `json:"upn"`
	Code     string    `json:"code"`
	Expires  time.Time `json:"expires"`
}

// String redacts the code, for logs.
func (r OverrideCodeResponse) String() string {
	return "override code for " + r.DeviceID + " (" + r.UPN + ", code " + Secret(r.Code).String() + ", expires " +
		r.Expires.UTC().Format(time.RFC3339) + ")"
}

// Error is every non-2xx body: {"error": sentence, "reason": code}.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Reason  string `json:"reason"`
}

func (e *Error) Error() string { return e.Message }

// Body limits, each sized from what the other end may legitimately send.
//
//   - MaxRequestBody bounds every request the tenant reads. The largest is an
//     enrollment: a CSR (about 500 bytes of PEM), a device name of at most 128
//     characters and a few tokens.
//   - MaxConfigBody bounds an AgentConfig's JSON. The tenant refuses to hand
//     out a larger one (ReasonConfigTooLarge, naming the user) rather than send
//     what agents would refuse. A user steered to 10,000 apps of five hosts
//     each gets about 2.5 MiB (3.3 MiB sealed), so this leaves 6× headroom.
//   - MaxEnrollAnswer bounds a device enrollment's answer: the config sealed
//     (base64 of the ciphertext: 4/3 of the config plus the GCM tag) and the
//     certificate, the CA and names (answerOverhead).
//   - MaxCertAnswer bounds an answer without a config: renewal, publisher
//     enrollment.
//   - MaxErrorBody bounds an error body: one sentence and a reason.
const (
	MaxRequestBody  = 64 << 10
	MaxConfigBody   = 16 << 20
	MaxEnrollAnswer = (MaxConfigBody+sealTagSize+2)/3*4 + answerOverhead
	MaxCertAnswer   = answerOverhead
	MaxErrorBody    = 4 << 10

	answerOverhead = 64 << 10
)

// Errors of DecodeAnswer, for errors.Is.
var (
	// ErrAnswerTooLarge: the answer exceeds the limit the caller gave; the
	// error's text is "the tenant's answer is larger than N bytes".
	ErrAnswerTooLarge = errors.New("the tenant's answer is too large")
	// ErrAnswerCut: the connection failed while the answer was being read, or
	// the answer ends in the middle of its JSON. The tenant may have acted on
	// the request: retry it unchanged (enrollment is idempotent per device key).
	ErrAnswerCut = errors.New("the tenant's answer was cut off")
)

// AnswerTooLargeError is ErrAnswerTooLarge with the limit that was exceeded.
type AnswerTooLargeError struct{ Limit int64 }

func (e *AnswerTooLargeError) Error() string {
	return fmt.Sprintf("the tenant's answer is larger than %d bytes", e.Limit)
}

// Is makes errors.Is(err, ErrAnswerTooLarge) true.
func (e *AnswerTooLargeError) Is(target error) bool { return target == ErrAnswerTooLarge }

// DecodeAnswer reads an answer of at most limit bytes from r and decodes it
// into v leniently: unknown fields are ignored, so a newer tenant may add
// some. It tells the three ways an answer goes wrong apart, because each has
// its own fix: too large (*AnswerTooLargeError), cut off (wraps ErrAnswerCut
// and the read error), and malformed (a JSON error: not a tenant API).
func DecodeAnswer(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	switch {
	case int64(len(data)) > limit:
		return &AnswerTooLargeError{Limit: limit}
	case err != nil:
		return fmt.Errorf("%w after %d bytes: %w", ErrAnswerCut, len(data), err)
	}
	err = json.Unmarshal(data, v)
	var syn *json.SyntaxError
	if errors.As(err, &syn) && syn.Offset >= int64(len(bytes.TrimRight(data, " \t\r\n"))) && len(data) > 0 {
		// The JSON stops where the data does: a body cut at a clean end of
		// the connection (no length framing told the reader).
		return fmt.Errorf("%w after %d bytes: %w", ErrAnswerCut, len(data), err)
	}
	if err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}

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
