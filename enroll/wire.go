package enroll

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// The tenant API's JSON envelopes. Requests are decoded strictly by the tenant
// (unknown fields, trailing data and oversized bodies are errors); responses are
// decoded leniently by the agent so that a newer tenant may add fields without
// breaking older agents. Tokens travel as plain strings inside TLS; the structs
// are never logged.

// upnEnrollRequest is POST /v1/enroll/upn.
type upnEnrollRequest struct {
	OrgKey          string `json:"org_key"`
	UPN             string `json:"upn"`
	DeviceName      string `json:"device_name"`
	CSR             string `json:"csr"` // PEM "CERTIFICATE REQUEST"
	EnrollAuthToken string `json:"enroll_auth_token,omitempty"`
}

// publisherEnrollRequest is POST /v1/publishers/enroll.
type publisherEnrollRequest struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	CSR   string `json:"csr"`
}

// enrollResponse answers both enrollments.
type enrollResponse struct {
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
	SealedConfig *sealedConfig   `json:"sealed_config,omitempty"`
}

// apiError is every non-2xx body: {"error": sentence, "reason": code}.
type apiError struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Reason  string `json:"reason"`
}

func (e *apiError) Error() string { return e.Message }

// Body limits. A CSR is about 500 bytes of PEM; a config for 10,000 apps is a few
// MiB.
const (
	maxRequestBody = 64 << 10
	maxConfigBody  = 16 << 20
	maxErrorBody   = 4 << 10
)

// decodeStrict decodes exactly one JSON value from r into v, rejecting unknown
// fields and anything after the value.
func decodeStrict(r io.Reader, v any) error {
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
