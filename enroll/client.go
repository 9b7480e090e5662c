package enroll

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform"
)

// Error is an enrollment or config failure explained for an administrator: its
// message is one sentence naming the cause and the fix, and Reason is a
// machine-readable code (the tenant's reason when the tenant refused).
type Error struct {
	Reason string
	Status int // HTTP status when the tenant answered, else 0
	msg    string
	err    error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

func errorf(reason string, err error, format string, args ...any) *Error {
	return &Error{Reason: reason, msg: fmt.Sprintf(format, args...), err: err}
}

// Timeouts for talking to the tenant API; the caller's context can only shorten
// them.
const (
	dialTimeout    = 10 * time.Second
	requestTimeout = 30 * time.Second
)

func newTransport(tc *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		// The tenant API may sit inside an app prefix: never through the TUN.
		DialContext:           platform.BypassDialer(dialTimeout).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: requestTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2,
		IdleConnTimeout:       90 * time.Second,
	}
}

// loadCACert reads cacert= into a pool and its PEM; no path means system roots.
func loadCACert(path string) (*x509.CertPool, []byte, error) {
	if path == "" {
		return nil, nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, errorf(ReasonBadParameter, err,
			"cannot read cacert=%s: %v — pass the path of the tenant CA PEM the administrator distributed", path, unwrapPathError(err))
	}
	pool, err := tenantapi.PoolFromPEM(data)
	if err != nil {
		return nil, nil, errorf(ReasonBadParameter, err,
			"cacert=%s is not a PEM certificate file (%v) — pass the tenant CA PEM (ca.pem)", path, err)
	}
	return pool, data, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkUPNParams says what is missing or unsupported for UPN enrollment.
func checkUPNParams(p Params) (string, error) {
	if p.InstallMode == "IDP" {
		return "", errorf(ReasonUnsupportedInstall, nil,
			"installmode=IDP enrolls through the browser sign-in (Enroll or EnrollIdP), not by UPN — remove installmode= to enroll by UPN")
	}
	base, err := checkTokenParams(p)
	if err != nil {
		return "", err
	}
	switch {
	case p.Token == "":
		return "", errorf(ReasonBadParameter, nil, "token= is not set: pass the org key shown in the admin console")
	case p.UPN == "":
		return "", errorf(ReasonBadParameter, nil, "no user to enroll: pass upn=user@domain or log in as the user")
	}
	return base, nil
}

// EnrollUPN enrolls this device for p.UPN with the org key and, when the tenant
// enforces secure enrollment, the auth token. The device key is generated here
// and only its CSR is sent. The result is not yet saved: call Save.
func EnrollUPN(ctx context.Context, p Params, log *zap.Logger) (*Identity, error) {
	base, err := checkUPNParams(p)
	if err != nil {
		return nil, err
	}
	apiRoots, apiPEM, err := loadCACert(p.CACert)
	if err != nil {
		return nil, err
	}
	key, csr, err := tenantapi.NewKey(p.UPN)
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	req := tenantapi.UPNEnrollRequest{OrgKey: string(p.Token), UPN: p.UPN, DeviceName: deviceName(), CSR: csr,
		EnrollAuthToken: string(p.EnrollAuthToken)}
	log.Info("enrolling", zap.String("method", "upn"), zap.String("url", base), zap.String("upn", p.UPN), zap.Stringer("params", p))
	return enrollDevice(ctx, base, "/v1/enroll/upn", &req, key, apiRoots, apiPEM, p, log)
}

// checkTokenParams checks host= and the secure-enrollment parameters every
// device enrollment shares, and returns the tenant API's base URL.
func checkTokenParams(p Params) (string, error) {
	base, err := p.TenantURL()
	if err != nil {
		return "", errorf(ReasonBadParameter, err, "%v", err)
	}
	if p.EnrollEncryptionToken != "" && p.EnrollAuthToken == "" {
		return "", errorf(ReasonBadParameter, nil,
			"enrollencryptiontoken= needs enrollauthtoken= of the same token set: the tenant picks the encryption token by the auth token — pass both")
	}
	return base, nil
}

// enrollDevice posts a device enrollment, checks the certificate against the
// device key and the answer, and opens the initial config. Nothing is saved:
// on any error the key is dropped, and on success the caller calls Save.
func enrollDevice(ctx context.Context, base, path string, body any, key *ecdsa.PrivateKey,
	apiRoots *x509.CertPool, apiPEM []byte, p Params, log *zap.Logger) (*Identity, error) {
	resp, err := postEnroll(ctx, base+path, apiRoots, body, p)
	if err != nil {
		return nil, err
	}
	cert, roots, err := checkEnrollResponse(base, resp, key)
	if err != nil {
		return nil, err
	}
	peer, _ := tenantapi.PeerIdentity(cert.Leaf)
	if peer.Kind != tenantapi.KindDevice || peer.Tenant != resp.Tenant || peer.Device != resp.DeviceID ||
		peer.User != resp.User {
		return nil, errorf(ReasonBadResponse, nil,
			"tenant API at %s issued a certificate that does not match its answer — report this to the tenant administrator", base)
	}
	if p.Tenant != "" && p.Tenant != resp.Tenant {
		return nil, errorf(ReasonBadParameter, nil,
			"host=%s serves tenant %q, not tenant=%s — check host= and tenant=", p.Host, resp.Tenant, p.Tenant)
	}
	cfg, err := initialConfig(base, resp, p)
	if err != nil {
		return nil, err
	}
	id := &Identity{Tenant: resp.Tenant, User: resp.User, DeviceID: resp.DeviceID, TenantURL: base,
		Cert: cert, Roots: roots, APIRoots: apiRoots, InitialConfig: cfg, caPEM: []byte(resp.CA), apiCAPEM: apiPEM}
	log.Info("enrolled", zap.String("tenant", id.Tenant), zap.String("user", id.User),
		zap.String("device_id", id.DeviceID), zap.Time("expires", id.Expires()),
		zap.Bool("config_sealed", resp.SealedConfig != nil))
	return id, nil
}

// initialConfig opens the config delivered with the enrollment. The agent's
// encryption token and the tenant's choice must agree: a sealed config without a
// token, a token that does not open it, and a token with a config in the clear
// (a silent downgrade) are all refused.
func initialConfig(base string, resp *tenantapi.EnrollResponse, p Params) (*tenantapi.AgentConfig, error) {
	tok := string(p.EnrollEncryptionToken)
	switch {
	case resp.SealedConfig != nil && tok == "":
		return nil, errorf(ReasonEncryptionRequired, nil,
			"tenant encrypts the initial config for this enrollment token set: re-run with enrollencryptiontoken=<encryption token of the same set> or `ztdiag -e enrollauthtoken=… enrollencryptiontoken=…` (nothing was saved)")
	case resp.SealedConfig != nil:
		cfg, err := tenantapi.OpenConfig(resp.SealedConfig, tok, resp.Tenant, resp.DeviceID)
		if errors.Is(err, tenantapi.ErrSealOpen) {
			return nil, errorf(ReasonBadEncryptionToken, err,
				"the enrollment encryption token (enrollencryptiontoken=) does not decrypt the tenant's initial config: copy the encryption token of the same set as enrollauthtoken= from the admin console and re-run, or use `ztdiag -e enrollauthtoken=… enrollencryptiontoken=…` (nothing was saved)")
		}
		if err != nil {
			return nil, errorf(ReasonBadResponse, err,
				"tenant API at %s sent an unusable encrypted config (%v) — report this to the tenant administrator (nothing was saved)", base, err)
		}
		return cfg, nil
	case tok != "":
		return nil, errorf(ReasonEncryptionNotUsed, nil,
			"enrollencryptiontoken= is set but the tenant sent the initial config unencrypted: the token set of enrollauthtoken= has no encryption token — add one in the admin console or drop enrollencryptiontoken= (nothing was saved)")
	case len(resp.Config) == 0:
		return nil, nil // an older tenant: the config comes from the first fetch
	}
	var cfg tenantapi.AgentConfig
	if err := json.Unmarshal(resp.Config, &cfg); err != nil {
		return nil, errorf(ReasonBadResponse, err,
			"tenant API at %s sent a malformed initial config (%v) — report this to the tenant administrator", base, err)
	}
	return &cfg, nil
}

// deviceName is the name the tenant shows for this device: the host name,
// shortened to what the tenant accepts.
func deviceName() string {
	h, _ := os.Hostname()
	h = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, h)
	for len(h) > 128 {
		_, size := utf8.DecodeLastRuneInString(h)
		h = h[:len(h)-size]
	}
	if h == "" {
		return "unknown"
	}
	return h
}

// An enrollment answer lost on its way back (the connection cut while the
// answer is read, or before its headers arrive) is asked for again with the
// same body: the same device key and CSR. The tenant keys its device record by
// that key, so the retry finds the device the first attempt recorded — and the
// invitation or sign-in code it consumed — instead of creating a second one.
// Nothing else is retried: a refusal or a malformed answer would only repeat.
const (
	enrollAttempts  = 3
	enrollRetryWait = 500 * time.Millisecond
)

// postEnroll POSTs an enrollment and decodes a 200 answer, retrying a lost
// answer; anything else becomes an *Error.
func postEnroll(ctx context.Context, url string, roots *x509.CertPool, body any, p Params) (*tenantapi.EnrollResponse, error) {
	tr := newTransport(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	defer tr.CloseIdleConnections()
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		out, err := postEnrollOnce(ctx, tr, url, data, p)
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonAnswerLost {
			return out, err
		}
		if attempt == enrollAttempts {
			e.msg = fmt.Sprintf("the enrollment answer of the tenant API at %s was lost on the way to this device %d times (%v) — check the network and any proxy between this device and host=, then retry",
				baseOf(url), attempt, urlCause(e.err))
			return nil, e
		}
		select {
		case <-ctx.Done():
			return nil, explainTransport(baseOf(url), ctx.Err(), p.CACert)
		case <-time.After(enrollRetryWait << (attempt - 1)):
		}
		// A cut connection is not reused.
		tr.CloseIdleConnections()
	}
}

// postEnrollOnce is one attempt of postEnroll. A lost answer is an *Error
// with ReasonAnswerLost.
func postEnrollOnce(ctx context.Context, tr *http.Transport, url string, data []byte, p Params) (*tenantapi.EnrollResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return nil, errorf(ReasonBadParameter, err, "bad tenant API URL %s: %v — check host=", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if lostAnswer(ctx, err) {
			return nil, errorf(ReasonAnswerLost, err, "the connection to the tenant API closed before its answer")
		}
		return nil, explainTransport(baseOf(url), err, p.CACert)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, explainStatus(baseOf(url), resp, p)
	}
	var out tenantapi.EnrollResponse
	if err := tenantapi.DecodeAnswer(resp.Body, tenantapi.MaxEnrollAnswer, &out); err != nil {
		return nil, explainAnswer(baseOf(url), "enrollment answer", err)
	}
	return &out, nil
}

// lostAnswer reports whether a request failed after it may have reached the
// tenant: the connection closed or was reset before the answer's headers.
// Refusals to connect, TLS and DNS failures and the caller's cancellation are
// not: the tenant never saw the request, or the caller gave up.
func lostAnswer(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(err.Error(), "stream error") // HTTP/2 RST_STREAM
}

// explainAnswer turns a failure to read a 200 answer (tenantapi.DecodeAnswer)
// into one sentence; what names the answer ("enrollment answer", "config").
func explainAnswer(base, what string, err error) *Error {
	switch {
	case errors.Is(err, tenantapi.ErrAnswerTooLarge):
		return errorf(ReasonAnswerTooLarge, err,
			"the %s of the tenant API at %s is refused: %v — the user's config is too large for one device; report this to the tenant administrator", what, base, err)
	case errors.Is(err, tenantapi.ErrAnswerCut):
		return errorf(ReasonAnswerLost, err, "the %s of the tenant API at %s was cut off (%v) — check the network and any proxy between this device and the tenant, then retry", what, base, err)
	}
	return errorf(ReasonBadResponse, err,
		"tenant API at %s sent a malformed %s (%v) — check that host= points at the tenant API, not a proxy or another server", base, what, err)
}

// checkEnrollResponse checks that the certificate is for our key and chains to
// the tenant CA the response names, and returns both.
func checkEnrollResponse(base string, r *tenantapi.EnrollResponse, key *ecdsa.PrivateKey) (tls.Certificate, *x509.CertPool, error) {
	cert, roots, err := tenantapi.CheckIssued(r, key)
	if err != nil {
		return tls.Certificate{}, nil, errorf(ReasonBadResponse, err,
			"tenant API at %s sent an unusable certificate (%v) — report this to the tenant administrator", base, err)
	}
	return cert, roots, nil
}
