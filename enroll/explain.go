package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// baseOf strips the path from a tenant API URL, for messages.
func baseOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

// explainTransport turns a failure to get any HTTP answer into one sentence.
func explainTransport(base string, err error, cacert string) *Error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		recErr    tls.RecordHeaderError
		dnsErr    *net.DNSError
	)
	trust := "pass cacert=<path of the tenant CA PEM> or install that CA in the system store"
	if cacert != "" {
		trust = "check that cacert=" + cacert + " is this tenant's CA"
	}
	switch {
	case errors.As(err, &unknownCA):
		return errorf(ReasonUntrustedCert, err,
			"tenant API at %s presents a certificate from an authority this device does not trust — %s", base, trust)
	case errors.As(err, &hostErr):
		return errorf(ReasonUntrustedCert, err,
			"tenant API certificate is not valid for the name in host= (%s) — use a name the certificate was issued for", hostErr.Error())
	case errors.As(err, &invalid):
		return errorf(ReasonUntrustedCert, err,
			"tenant API at %s presents an invalid certificate (%s) — check the tenant's certificate and this device's clock", base, invalid.Error())
	case errors.As(err, &verifyErr):
		return errorf(ReasonUntrustedCert, err,
			"tenant API at %s presents a certificate that does not verify (%v) — %s", base, verifyErr.Err, trust)
	case errors.As(err, &recErr):
		return errorf(ReasonUnreachable, err,
			"%s does not speak TLS — check the port in host=", base)
	case errors.Is(err, context.Canceled):
		return errorf(ReasonUnreachable, err, "request to tenant API at %s was cancelled", base)
	case errors.As(err, &dnsErr):
		return errorf(ReasonUnreachable, err,
			"cannot reach tenant API at %s: cannot resolve %s — check host= and this device's DNS", base, dnsErr.Name)
	}
	cause := "no answer"
	var opErr *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		cause = "connection refused"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		cause = "timed out"
	case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
		cause = "no route to host"
	case errors.As(err, &opErr):
		cause = opErr.Err.Error()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		cause = "connection closed during the request"
	}
	return errorf(ReasonUnreachable, err,
		"cannot reach tenant API at %s: %s — check host= and that the tenant is running", base, cause)
}

// urlCause strips net/http's "Get \"url\": " wrapper, which repeats what the
// sentence already says.
func urlCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readAPIError decodes a tenant error body; nil when the body is not one (a
// proxy or another server answered).
func readAPIError(resp *http.Response) *tenantapi.Error {
	var e tenantapi.Error
	dec := json.NewDecoder(io.LimitReader(resp.Body, tenantapi.MaxErrorBody))
	if err := dec.Decode(&e); err != nil || e.Reason == "" {
		return nil
	}
	e.Status = resp.StatusCode
	e.Message = sanitize(e.Message)
	return &e
}

// sanitize keeps a server-supplied message to one printable line.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// explainStatus turns a tenant refusal into one sentence.
func explainStatus(base string, resp *http.Response, p Params) *Error {
	e := readAPIError(resp)
	if e == nil {
		return &Error{Reason: ReasonBadResponse, Status: resp.StatusCode, msg: "tenant API at " + base +
			" answered HTTP " + resp.Status + " without a tenant error — check that host= points at the tenant API, not a proxy or another server"}
	}
	out := &Error{Reason: e.Reason, Status: e.Status, err: e}
	switch e.Reason {
	case tenantapi.ReasonBadOrgKey:
		out.msg = "tenant rejected the org key (token=): check the key in the admin console"
	case tenantapi.ReasonUnknownUser:
		out.msg = "tenant " + base + " has no user " + p.UPN + " (upn=): add the user in the admin console or pass the right upn="
	case tenantapi.ReasonSecureEnrollment:
		out.msg = "tenant enforces secure enrollment: re-run with enrollauthtoken=<auth token from the admin console> or `ztdiag -e enrollauthtoken=…`"
	case tenantapi.ReasonBadAuthToken:
		out.msg = "tenant rejected the enrollment auth token (enrollauthtoken=): copy the current token from the admin console and re-run, or `ztdiag -e enrollauthtoken=…`"
	case tenantapi.ReasonAuthTokenExpired:
		out.msg = "the enrollment auth token has expired (enrollauthtoken=): create a new token set in the admin console and re-run with it, or `ztdiag -e enrollauthtoken=…`"
	case tenantapi.ReasonAuthTokenRevoked:
		out.msg = "the enrollment auth token has been revoked (enrollauthtoken=): re-run with a current token from the admin console, or `ztdiag -e enrollauthtoken=…`"
	case tenantapi.ReasonBadUserKey:
		out.msg = "tenant does not know this invitation's user key (userkey=): copy it again from the invitation email or ask the administrator for a new invitation"
	case tenantapi.ReasonInvitationUsed:
		out.msg = "this invitation's user key (userkey=) has already enrolled a device (" + e.Message + "): a key works once — ask the administrator for a new invitation"
	case tenantapi.ReasonInvitationExpired:
		out.msg = "this invitation has expired (" + e.Message + "): ask the administrator for a new invitation"
	case tenantapi.ReasonBadIdPCode:
		out.msg = "tenant refused the sign-in code (expired, already used or not for this enrollment): re-run the enrollment and finish the sign-in within a minute"
	case tenantapi.ReasonTooManyAttempts:
		out.msg = "tenant API at " + base + " is refusing this address after too many failed enrollments: fix the key or token, then retry after " + resp.Header.Get("Retry-After") + "s"
	case tenantapi.ReasonClientCertRequired, tenantapi.ReasonNotADevice, tenantapi.ReasonWrongTenant:
		out.msg = "tenant API at " + base + " did not accept this device's certificate (" + e.Message + "): enroll the device again"
	default:
		out.msg = "tenant API at " + base + " refused the request: " + e.Message + " (HTTP " + http.StatusText(e.Status) + ", " + e.Reason + ")"
	}
	return out
}
