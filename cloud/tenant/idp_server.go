package tenant

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// The tenant's own identity provider for IdP enrollment: an OAuth 2.0
// authorization endpoint for native apps (RFC 8252) with PKCE S256 (RFC 7636).
//
//	GET  /v1/idp/authorize  sign-in page (UPN + password) for a valid request
//	POST /v1/idp/authorize  checks the password, redirects to the agent's
//	                        loopback redirect_uri with a one-time code and state
//	POST /v1/idp/token      code + code_verifier + CSR → device certificate
//
// Only loopback redirect URIs over http (127.0.0.1 or [::1], any port) are
// accepted, as RFC 8252 section 7.3 prescribes; a bad request is shown as an
// error page, never redirected. Codes live 60 seconds. The first exchange
// attempt consumes a code: a wrong one deletes it, a right one binds it to the
// device key of its CSR, so that within those 60 seconds the same exchange —
// same verifier, same device key — may be repeated by an agent whose answer
// was lost (devices.go), and no other.

const (
	idpCodeTTL    = 60 * time.Second
	maxIdPPending = 10000
)

// idpRequest is an authorization request, as the agent sends it and as the
// sign-in form carries it back in hidden fields.
type idpRequest struct {
	ClientID, RedirectURI, Challenge, State, LoginHint string
}

// parseIdPRequest checks an authorization request's parameters.
func parseIdPRequest(q url.Values) (idpRequest, string) {
	r := idpRequest{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		Challenge: q.Get("code_challenge"), State: q.Get("state"), LoginHint: q.Get("login_hint")}
	switch {
	case r.ClientID != tenantapi.IdPClientID:
		return r, "unknown client_id: only the ztagent agent may sign in here"
	case checkLoopbackRedirect(r.RedirectURI) != "":
		return r, checkLoopbackRedirect(r.RedirectURI)
	case q.Get("response_type") != "" && q.Get("response_type") != "code":
		return r, "response_type must be code"
	case q.Get("code_challenge_method") != "S256":
		return r, "code_challenge_method must be S256 (PKCE)"
	case !isB64URL(r.Challenge, 43, 43):
		return r, "code_challenge must be 43 base64url characters (SHA-256 of the verifier)"
	case !isB64URL(r.State, 16, 128):
		return r, "state must be 16 to 128 base64url characters"
	case len(r.LoginHint) > 256:
		return r, "login_hint is too long"
	}
	return r, ""
}

// checkLoopbackRedirect accepts http://127.0.0.1:PORT/path and http://[::1]:PORT/path.
func checkLoopbackRedirect(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.RawQuery != "" || u.Opaque != "" {
		return "redirect_uri must be http://127.0.0.1:PORT/path (a loopback redirect, RFC 8252)"
	}
	addr, err := netip.ParseAddr(u.Hostname())
	if err != nil || !addr.IsLoopback() || (addr.Is4() && addr != netip.AddrFrom4([4]byte{127, 0, 0, 1})) {
		return "redirect_uri must point at 127.0.0.1 or [::1], not a name or another address"
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return "redirect_uri must carry the agent's port"
	}
	return ""
}

func isB64URL(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// idpCode is an issued authorization code.
type idpCode struct {
	req     idpRequest
	upn     string
	expires time.Time
	device  string // the device id it was exchanged for; "" until then
}

// idpCodes holds pending codes by their SHA-256, bounded; expired ones are
// pruned on insert, so it owns no goroutine.
type idpCodes struct {
	mu    sync.Mutex
	codes map[string]idpCode
}

func (c *idpCodes) add(code string, v idpCode, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.codes == nil {
		c.codes = map[string]idpCode{}
	}
	if len(c.codes) >= maxIdPPending {
		for k, e := range c.codes {
			if !now.Before(e.expires) {
				delete(c.codes, k)
			}
		}
		if len(c.codes) >= maxIdPPending {
			return false
		}
	}
	c.codes[keyHash(code)] = v
	return true
}

// claim exchanges the code for deviceID when ok accepts it: a code not yet
// exchanged is deleted if ok refuses it and bound to deviceID if ok accepts;
// a code bound to deviceID may be claimed again (with ok still checked), and a
// code bound to another device never.
func (c *idpCodes) claim(code, deviceID string, now time.Time, ok func(idpCode) bool) (idpCode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := keyHash(code)
	v, found := c.codes[h]
	switch {
	case !found:
		return idpCode{}, false
	case !now.Before(v.expires):
		delete(c.codes, h)
		return idpCode{}, false
	case v.device != "":
		return v, v.device == deviceID && ok(v)
	case !ok(v):
		delete(c.codes, h)
		return idpCode{}, false
	}
	v.device = deviceID
	c.codes[h] = v
	return v, true
}

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to {{.Tenant}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:24em;margin:4em auto}label,input,button{display:block;width:100%;margin:.3em 0}.err{color:#b00}</style>
</head><body>
<h1>Sign in to {{.Tenant}}</h1>
<p>Enroll this device with ztagent.</p>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
{{if .Form}}<form method="post" action="/v1/idp/authorize" id="signin">
<input type="hidden" name="client_id" value="{{.Req.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.Req.RedirectURI}}">
<input type="hidden" name="code_challenge" value="{{.Req.Challenge}}">
<input type="hidden" name="code_challenge_method" value="S256">
<input type="hidden" name="state" value="{{.Req.State}}">
<label for="upn">User (user@domain)</label>
<input id="upn" name="upn" type="email" autocomplete="username" required value="{{.Req.LoginHint}}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="submit">Sign in</button>
</form>{{end}}
</body></html>
`))

type signInData struct {
	Tenant, Error string
	Form          bool
	Req           idpRequest
}

func renderSignIn(w http.ResponseWriter, status int, d signInData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	signInPage.Execute(w, d)
}

func (h *tenantHandler) idpAuthorizePage(w http.ResponseWriter, r *http.Request, t *Tenant) {
	req, bad := parseIdPRequest(r.URL.Query())
	if bad != "" {
		renderSignIn(w, http.StatusBadRequest, signInData{Tenant: t.Name, Error: "This sign-in link is not valid: " + bad})
		return
	}
	renderSignIn(w, http.StatusOK, signInData{Tenant: t.Name, Form: true, Req: req})
}

// dummyHash is compared for unknown users, so timing does not reveal who exists.
// It is made on first use, not at init, to keep the agent's start fast.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("ztagent unknown user"), bcrypt.DefaultCost)
	return h
})

func (h *tenantHandler) idpAuthorizeSubmit(w http.ResponseWriter, r *http.Request, t *Tenant) {
	if blocked, _ := h.limit.blocked(r.RemoteAddr, h.cfg.Now()); blocked {
		renderSignIn(w, http.StatusTooManyRequests, signInData{Tenant: t.Name,
			Error: "Too many failed sign-ins from this address; wait a minute and start again from the agent."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, tenantapi.MaxRequestBody)
	if err := r.ParseForm(); err != nil {
		renderSignIn(w, http.StatusBadRequest, signInData{Tenant: t.Name, Error: "Malformed sign-in form."})
		return
	}
	req, bad := parseIdPRequest(r.PostForm)
	if bad != "" {
		renderSignIn(w, http.StatusBadRequest, signInData{Tenant: t.Name, Error: "This sign-in link is not valid: " + bad})
		return
	}
	upn := strings.TrimSpace(r.PostForm.Get("upn"))
	user := t.User(upn)
	var hash []byte
	if user != nil && user.PasswordHash != "" {
		hash = []byte(user.PasswordHash)
	} else {
		hash = dummyHash()
	}
	pwOK := bcrypt.CompareHashAndPassword(hash, []byte(r.PostForm.Get("password"))) == nil
	if user == nil || user.PasswordHash == "" || !pwOK {
		h.limit.fail(r.RemoteAddr, h.cfg.Now())
		h.log.Warn("idp sign-in refused", zap.String("tenant", t.Name), zap.String("upn", truncate(upn)),
			zap.String("remote", r.RemoteAddr))
		req.LoginHint = upn
		renderSignIn(w, http.StatusUnauthorized, signInData{Tenant: t.Name, Form: true, Req: req,
			Error: "Wrong user or password."})
		return
	}
	code := tenantapi.RandomB64URL(32)
	if !h.codes.add(code, idpCode{req: req, upn: user.UPN, expires: h.cfg.Now().Add(idpCodeTTL)}, h.cfg.Now()) {
		renderSignIn(w, http.StatusServiceUnavailable, signInData{Tenant: t.Name, Error: "Too many sign-ins in progress; try again shortly."})
		return
	}
	h.log.Info("idp sign-in", zap.String("tenant", t.Name), zap.String("upn", user.UPN))
	v := url.Values{"code": {code}, "state": {req.State}}
	http.Redirect(w, r, req.RedirectURI+"?"+v.Encode(), http.StatusSeeOther)
}

func (h *tenantHandler) idpToken(w http.ResponseWriter, r *http.Request, t *Tenant) {
	req, ok := readRequest[tenantapi.IdPTokenRequest](h, w, r)
	if !ok {
		return
	}
	log := h.log.With(zap.String("tenant", t.Name), zap.String("remote", r.RemoteAddr))
	csrDER, deviceID, e := checkDeviceRequest(req.DeviceName, req.CSR)
	var user *User
	if e == nil {
		user, e = h.redeemCode(&req, deviceID, t)
	}
	var tok *EnrollToken
	if e == nil {
		// The sign-in is the proof; a token that is presented is still checked.
		tok, e = t.checkEnrollAuth(req.EnrollAuthToken, false, h.cfg.Now())
	}
	if e != nil {
		log.Warn("idp enrollment refused", zap.String("reason", e.Reason))
		h.refusedCredential(r, e.Reason)
		writeError(w, e)
		return
	}
	h.issueDevice(w, t, issue{csrDER: csrDER, user: user, tok: tok, deviceName: req.DeviceName,
		method: "idp"}, log.With(zap.String("upn", user.UPN)))
}

// redeemCode consumes the code for deviceID and checks it against the
// verifier and the request it was issued for.
func (h *tenantHandler) redeemCode(req *tenantapi.IdPTokenRequest, deviceID string, t *Tenant) (*User, *tenantapi.Error) {
	c, ok := h.codes.claim(req.Code, deviceID, h.cfg.Now(), func(c idpCode) bool {
		return req.ClientID == c.req.ClientID && req.RedirectURI == c.req.RedirectURI &&
			subtle.ConstantTimeCompare([]byte(tenantapi.PKCES256(req.CodeVerifier)), []byte(c.req.Challenge)) == 1
	})
	if !ok {
		return nil, &tenantapi.Error{Status: http.StatusBadRequest, Reason: tenantapi.ReasonBadIdPCode,
			Message: "authorization code is unknown, expired, already used or not for this verifier"}
	}
	user := t.User(c.upn)
	if user == nil {
		return nil, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonUnknownUser,
			Message: "the signed-in user is no longer a member of this tenant"}
	}
	return user, nil
}
