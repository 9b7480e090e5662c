package tenant

import (
	"fmt"
	"net/http"
	"time"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// SecureEnrollment is the tenant's secure-enrollment setting: up to two token
// sets (so that one can be rotated while the other is still deployed) and the
// switch that makes an auth token mandatory for UPN enrollment.
type SecureEnrollment struct {
	Enforce bool          `yaml:"enforce"`
	Tokens  []EnrollToken `yaml:"tokens"`
}

// EnrollToken is one secure-enrollment token set.
type EnrollToken struct {
	Name      string           `yaml:"name"`
	AuthToken tenantapi.Secret `yaml:"auth_token"`
	// EncryptionToken, when set, encrypts the initial config returned to a
	// device that enrolled with AuthToken, on top of TLS (see tenantapi.SealConfig).
	EncryptionToken tenantapi.Secret `yaml:"encryption_token,omitempty"`
	// Created and Days give the expiry: Created + Days (7-365, default 90).
	Created time.Time `yaml:"created"`
	Days    int       `yaml:"days,omitempty"`
	Revoked bool      `yaml:"revoked,omitempty"`
}

const (
	defaultTokenDays = 90
	maxTokenSets     = 2
)

// Expires is when the token set stops being accepted.
func (e *EnrollToken) Expires() time.Time {
	d := e.Days
	if d == 0 {
		d = defaultTokenDays
	}
	return e.Created.AddDate(0, 0, d)
}

func (t *Tenant) compileSecureEnrollment(v *validator) {
	se := t.SecureEnrollment
	if se == nil {
		return
	}
	if len(se.Tokens) > maxTokenSets {
		v.badf("secure_enrollment.tokens", "%d token sets: at most %d", len(se.Tokens), maxTokenSets)
	}
	if se.Enforce && len(se.Tokens) == 0 {
		v.badf("secure_enrollment", "enforce is on but there is no token set: no device could enroll")
	}
	for i := range se.Tokens {
		tok := &se.Tokens[i]
		path := fmt.Sprintf("secure_enrollment.tokens[%d]", i)
		if tok.Name == "" {
			v.badf(path+".name", "missing")
		}
		if len(tok.AuthToken) < minSecretLen {
			v.badf(path+".auth_token", "missing or too short: use at least %d random characters", minSecretLen)
		}
		if tok.EncryptionToken != "" && len(tok.EncryptionToken) < minSecretLen {
			v.badf(path+".encryption_token", "too short: use at least %d random characters", minSecretLen)
		}
		if tok.EncryptionToken != "" && tok.EncryptionToken.Equal(string(tok.AuthToken)) {
			v.badf(path+".encryption_token", "equals the auth token: the encryption token must be a different secret")
		}
		if tok.Created.IsZero() {
			v.badf(path+".created", "missing: the date the token set was created (e.g. 2026-11-23)")
		}
		if tok.Days != 0 && (tok.Days < 7 || tok.Days > 365) {
			v.badf(path+".days", "%d: a token set lives 7 to 365 days", tok.Days)
		}
	}
}

// checkEnrollAuth applies secure enrollment to an enrollment presenting token
// (empty when none) at time now. required says whether the enforce switch
// applies to this enrollment method (UPN, pre-logon IdP) or not (interactive
// IdP, where the user's sign-in is the proof). A token that is presented is
// always checked. On success it returns the matching token set, nil when none
// was presented.
func (t *Tenant) checkEnrollAuth(token string, required bool, now time.Time) (*EnrollToken, *tenantapi.Error) {
	se := t.SecureEnrollment
	if se == nil {
		// No secure enrollment configured: tokens are neither needed nor known.
		return nil, nil
	}
	if token == "" {
		if se.Enforce && required {
			return nil, &tenantapi.Error{Status: http.StatusMethodNotAllowed, Reason: tenantapi.ReasonSecureEnrollment,
				Message: "tenant enforces secure enrollment: an enrollment auth token is required"}
		}
		return nil, nil
	}
	// Compare against every set so that timing does not tell which one matched.
	var match *EnrollToken
	for i := range se.Tokens {
		if se.Tokens[i].AuthToken.Equal(token) {
			match = &se.Tokens[i]
		}
	}
	switch {
	case match == nil:
		return nil, &tenantapi.Error{Status: http.StatusUnauthorized, Reason: tenantapi.ReasonBadAuthToken,
			Message: "enrollment auth token is not valid for this tenant"}
	case match.Revoked:
		return nil, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonAuthTokenRevoked,
			Message: "enrollment auth token has been revoked"}
	case !now.Before(match.Expires()):
		return nil, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonAuthTokenExpired,
			Message: "enrollment auth token expired on " + match.Expires().UTC().Format(time.DateOnly)}
	}
	return match, nil
}
