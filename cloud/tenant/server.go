package tenant

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// HandlerConfig configures the tenant API handler.
type HandlerConfig struct {
	// Tenant returns the current tenant snapshot; a reload swaps what it returns.
	Tenant func() *Tenant
	CA     *CA
	Log    *zap.Logger
	// Now is the clock for token expiry; nil means time.Now.
	Now func() time.Time
	// StateDir keeps the tenant API's own state (used invitation keys). Empty
	// keeps it in memory only: a restart would make used invitations reusable.
	StateDir string
}

type tenantHandler struct {
	cfg    HandlerConfig
	log    *zap.Logger
	routes map[string]route
	// limit throttles failed enrollments per client address.
	limit   *failLimiter
	invites *inviteStore
	devices *deviceStore
	codes   idpCodes
	// maxConfig is tenantapi.MaxConfigBody; tests lower it.
	maxConfig int
}

type route struct {
	method string
	fn     func(http.ResponseWriter, *http.Request, *Tenant)
}

// NewHandler serves the tenant API under /v1/:
//
//	POST /v1/enroll/upn         device enrollment by UPN and org key
//	POST /v1/enroll/invite      device enrollment by one-time user key (email invitation)
//	POST /v1/admin/invitations  issue an invitation (bearer admin_token)
//	POST /v1/admin/override-codes  issue a one-time tamper override code for a device (bearer admin_token)
//	GET|POST /v1/idp/authorize  IdP sign-in page (see idp_server.go)
//	POST /v1/idp/token          IdP enrollment: code + PKCE verifier + CSR
//	POST /v1/renew              new device certificate, over mutual TLS with the current one
//	POST /v1/publishers/enroll  publisher enrollment by registration token
//	GET  /v1/config             the device's AgentConfig, over mutual TLS, with ETag
//
// Errors are JSON {"error": sentence, "reason": code}. The server's TLS config
// must verify client certificates against the CA when given (see
// (*CA).TenantServerTLS); /v1/config refuses requests without a verified one.
func NewHandler(cfg HandlerConfig) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	h := &tenantHandler{cfg: cfg, log: cfg.Log, limit: newFailLimiter(), invites: openInviteStore(cfg.StateDir),
		devices: openDeviceStore(cfg.StateDir, cfg.Now()), maxConfig: tenantapi.MaxConfigBody}
	switch {
	case h.invites.loadErr != nil:
		h.log.Error("invitation state unreadable: invitation enrollment is refused until it is repaired",
			zap.Error(h.invites.loadErr))
	case cfg.StateDir == "":
		h.log.Warn("no tenant state directory: used invitation keys and device records are forgotten on restart")
	}
	if h.devices.loadErr != nil {
		h.log.Error("device records unreadable: enrollment is refused until they are repaired", zap.Error(h.devices.loadErr))
	}
	h.routes = map[string]route{
		"/v1/enroll/upn":           {http.MethodPost, h.enrollUPN},
		"/v1/enroll/invite":        {http.MethodPost, h.enrollInvite},
		"/v1/admin/invitations":    {http.MethodPost, h.adminInvite},
		"/v1/admin/override-codes": {http.MethodPost, h.adminOverrideCode},
		"/v1/idp/token":            {http.MethodPost, h.idpToken},
		"/v1/renew":                {http.MethodPost, h.renew},
		"/v1/publishers/enroll":    {http.MethodPost, h.enrollPublisher},
		"/v1/config":               {http.MethodGet, h.config},
	}
	return h
}

func (h *tenantHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/idp/authorize" {
		// The sign-in page answers a browser: GET shows it, POST submits it.
		h.idpAuthorize(w, r)
		return
	}
	rt, ok := h.routes[r.URL.Path]
	if !ok {
		writeError(w, &tenantapi.Error{Status: http.StatusNotFound, Reason: tenantapi.ReasonNotFound,
			Message: "no such endpoint: " + r.URL.Path})
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeError(w, &tenantapi.Error{Status: http.StatusMethodNotAllowed, Reason: tenantapi.ReasonMethodNotAllowed,
			Message: r.URL.Path + " accepts only " + rt.method})
		return
	}
	t := h.cfg.Tenant()
	if t == nil {
		writeError(w, &tenantapi.Error{Status: http.StatusServiceUnavailable, Reason: tenantapi.ReasonInternal,
			Message: "tenant is not loaded"})
		return
	}
	rt.fn(w, r, t)
}

func (h *tenantHandler) idpAuthorize(w http.ResponseWriter, r *http.Request) {
	t := h.cfg.Tenant()
	switch {
	case t == nil:
		http.Error(w, "tenant is not loaded", http.StatusServiceUnavailable)
	case r.Method == http.MethodGet:
		h.idpAuthorizePage(w, r, t)
	case r.Method == http.MethodPost:
		h.idpAuthorizeSubmit(w, r, t)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// decodeRequest reads a size-limited, strictly decoded request body into v.
// readRequest is the common start of every enrollment endpoint: the
// per-address throttle on failed attempts, then the strict decoding of the
// body into a T. ok is false when an error answer has been written.
func readRequest[T any](h *tenantHandler, w http.ResponseWriter, r *http.Request) (req T, ok bool) {
	if h.throttled(w, r) {
		return req, false
	}
	if e := decodeRequest(w, r, &req); e != nil {
		writeError(w, e)
		return req, false
	}
	return req, true
}

func decodeRequest(w http.ResponseWriter, r *http.Request, v any) *tenantapi.Error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &tenantapi.Error{Status: http.StatusUnsupportedMediaType, Reason: tenantapi.ReasonBadRequest,
			Message: "request body must be application/json"}
	}
	err := tenantapi.DecodeStrict(http.MaxBytesReader(w, r.Body, tenantapi.MaxRequestBody), v)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &tenantapi.Error{Status: http.StatusRequestEntityTooLarge, Reason: tenantapi.ReasonBodyTooLarge,
			Message: "request body is larger than 64 KiB"}
	case err != nil:
		return &tenantapi.Error{Status: http.StatusBadRequest, Reason: tenantapi.ReasonBadRequest, Message: err.Error()}
	}
	return nil
}

func badRequest(reason, msg string) *tenantapi.Error {
	return &tenantapi.Error{Status: http.StatusBadRequest, Reason: reason, Message: msg}
}

// throttled refuses a client that has failed too often; it is checked before
// any secret is compared.
func (h *tenantHandler) throttled(w http.ResponseWriter, r *http.Request) bool {
	blocked, until := h.limit.blocked(r.RemoteAddr, h.cfg.Now())
	if !blocked {
		return false
	}
	secs := int(until.Sub(h.cfg.Now()).Seconds()) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, &tenantapi.Error{Status: http.StatusTooManyRequests, Reason: tenantapi.ReasonTooManyAttempts,
		Message: "too many failed enrollments from this address; retry in " + strconv.Itoa(secs) + "s"})
	return true
}

// refusedCredential counts a failure caused by a wrong key or token.
func (h *tenantHandler) refusedCredential(r *http.Request, reason string) {
	switch reason {
	case tenantapi.ReasonBadOrgKey, tenantapi.ReasonBadAuthToken, tenantapi.ReasonBadPublisherToken, tenantapi.ReasonBadUserKey, tenantapi.ReasonBadAdminToken:
		h.limit.fail(r.RemoteAddr, h.cfg.Now())
	}
}

func (h *tenantHandler) enrollUPN(w http.ResponseWriter, r *http.Request, t *Tenant) {
	req, ok := readRequest[tenantapi.UPNEnrollRequest](h, w, r)
	if !ok {
		return
	}
	log := h.log.With(zap.String("tenant", t.Name), zap.String("upn", req.UPN),
		zap.String("remote", r.RemoteAddr))
	csrDER, tok, e := h.checkUPNRequest(&req, t)
	if e != nil {
		log.Warn("enrollment refused", zap.String("reason", e.Reason))
		h.refusedCredential(r, e.Reason)
		writeError(w, e)
		return
	}
	h.issueDevice(w, t, issue{csrDER: csrDER, user: t.User(req.UPN), tok: tok,
		deviceName: req.DeviceName, method: "upn"}, log)
}

// checkUPNRequest applies, in order, shape, org key, secure enrollment and user
// membership, and returns the CSR's DER and the token set presented.
func (h *tenantHandler) checkUPNRequest(req *tenantapi.UPNEnrollRequest, t *Tenant) ([]byte, *EnrollToken, *tenantapi.Error) {
	switch {
	case req.OrgKey == "":
		return nil, nil, badRequest(tenantapi.ReasonBadRequest, "org_key is required")
	case req.UPN == "":
		return nil, nil, badRequest(tenantapi.ReasonBadRequest, "upn is required")
	}
	if err := checkDeviceName(req.DeviceName); err != nil {
		return nil, nil, badRequest(tenantapi.ReasonBadRequest, err.Error())
	}
	csrDER, err := decodeCSRPEM(req.CSR)
	if err != nil {
		return nil, nil, badRequest(tenantapi.ReasonBadCSR, err.Error())
	}
	if !t.OrgKey.Equal(req.OrgKey) {
		return nil, nil, &tenantapi.Error{Status: http.StatusUnauthorized, Reason: tenantapi.ReasonBadOrgKey,
			Message: "org key is not valid for this tenant"}
	}
	tok, e := t.checkEnrollAuth(req.EnrollAuthToken, true, h.cfg.Now())
	if e != nil {
		return nil, nil, e
	}
	if t.User(req.UPN) == nil {
		return nil, nil, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonUnknownUser,
			Message: "user " + req.UPN + " is not a member of this tenant"}
	}
	return csrDER, tok, nil
}

func (h *tenantHandler) enrollPublisher(w http.ResponseWriter, r *http.Request, t *Tenant) {
	req, ok := readRequest[tenantapi.PublisherEnrollRequest](h, w, r)
	if !ok {
		return
	}
	log := h.log.With(zap.String("tenant", t.Name), zap.String("publisher", req.Name),
		zap.String("remote", r.RemoteAddr))
	p := t.Publisher(req.Name)
	// Compare even for an unknown name, so timing does not reveal which names exist.
	var want tenantapi.Secret = "\x00unknown publisher\x00"
	if p != nil {
		want = p.Token
	}
	if ok := want.Equal(req.Token); !ok || p == nil {
		log.Warn("publisher enrollment refused", zap.String("reason", tenantapi.ReasonBadPublisherToken))
		h.refusedCredential(r, tenantapi.ReasonBadPublisherToken)
		writeError(w, &tenantapi.Error{Status: http.StatusUnauthorized, Reason: tenantapi.ReasonBadPublisherToken,
			Message: "publisher name or registration token is not valid for this tenant"})
		return
	}
	csrDER, err := decodeCSRPEM(req.CSR)
	var der []byte
	if err == nil {
		der, err = h.cfg.CA.SignPublisher(csrDER, tenantapi.PublisherIdentity{Tenant: t.Name, Name: p.Name})
	}
	if err != nil {
		writeError(w, badRequest(tenantapi.ReasonBadCSR, err.Error()))
		return
	}
	log.Info("publisher enrolled")
	writeJSON(w, http.StatusOK, &tenantapi.EnrollResponse{
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		CA:          string(h.cfg.CA.certPEM),
		Tenant:      t.Name,
		Publisher:   p.Name,
		PoP:         &t.PoP,
		PoPs:        t.PoPs,
	})
}

func (h *tenantHandler) config(w http.ResponseWriter, r *http.Request, t *Tenant) {
	peer, e := verifiedDevice(r, t)
	if e != nil {
		h.log.Warn("config refused", zap.String("reason", e.Reason), zap.String("remote", r.RemoteAddr))
		writeError(w, e)
		return
	}
	if err := h.devices.confirm(peer, h.cfg.Now()); err != nil {
		h.log.Warn("cannot record the device as confirmed", zap.String("device_id", peer.Device), zap.Error(err))
	}
	body, e := h.configJSON(t, peer.User)
	if e != nil {
		writeError(w, e)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// verifiedDevice returns the device identity of a request whose client
// certificate TLS verified against the tenant CA.
func verifiedDevice(r *http.Request, t *Tenant) (tenantapi.Peer, *tenantapi.Error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return tenantapi.Peer{}, &tenantapi.Error{Status: http.StatusUnauthorized, Reason: tenantapi.ReasonClientCertRequired,
			Message: "config is served only over mutual TLS with the device certificate"}
	}
	peer, err := tenantapi.PeerIdentity(r.TLS.VerifiedChains[0][0])
	switch {
	case err != nil || peer.Kind != tenantapi.KindDevice:
		return tenantapi.Peer{}, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonNotADevice,
			Message: "client certificate is not a device certificate"}
	case peer.Tenant != t.Name:
		return tenantapi.Peer{}, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonWrongTenant,
			Message: "device certificate belongs to another tenant"}
	}
	return peer, nil
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 13.1.2).
func etagMatch(header, etag string) bool {
	for _, c := range strings.Split(header, ",") {
		c = strings.TrimSpace(c)
		if c == "*" || strings.TrimPrefix(c, "W/") == etag {
			return true
		}
	}
	return false
}

// writeJSON writes v as the whole answer and reports whether it left this
// process: a client gone mid-answer is an error here, not a silent loss.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error","reason":"internal_error"}`)
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if _, err := w.Write(body); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}

func writeError(w http.ResponseWriter, e *tenantapi.Error) { writeJSON(w, e.Status, e) }

// TenantServerTLS returns a TLS config for the tenant API: a server certificate
// for names issued by the CA, TLS 1.3, and client certificates verified against
// the CA when presented (enrollment has none yet; /v1/config requires one).
func (ca *CA) TenantServerTLS(names []string) (*tls.Config, error) {
	cert, err := ca.IssueServer(names)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.Pool(),
	}, nil
}
