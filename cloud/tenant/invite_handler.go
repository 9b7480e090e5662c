package tenant

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// enrollInvite enrolls a device with a one-time user key. The key is the
// credential, so the enforce switch does not apply; an auth token that is
// presented is checked and selects the config's encryption token.
func (h *tenantHandler) enrollInvite(w http.ResponseWriter, r *http.Request, t *Tenant) {
	req, ok := readRequest[tenantapi.InviteEnrollRequest](h, w, r)
	if !ok {
		return
	}
	log := h.log.With(zap.String("tenant", t.Name), zap.String("remote", r.RemoteAddr))
	csrDER, deviceID, e := checkDeviceRequest(req.DeviceName, req.CSR)
	if e == nil && req.UserKey == "" {
		e = badRequest(tenantapi.ReasonBadRequest, "user_key is required")
	}
	var tok *EnrollToken
	if e == nil {
		tok, e = t.checkEnrollAuth(req.EnrollAuthToken, false, h.cfg.Now())
	}
	var user *User
	if e == nil {
		user, e = h.invites.redeem(t, req.UserKey, deviceID, h.cfg.Now())
	}
	if e != nil {
		log.Warn("invitation enrollment refused", zap.String("reason", e.Reason))
		h.refusedCredential(r, e.Reason)
		writeError(w, e)
		return
	}
	h.issueDevice(w, t, issue{csrDER: csrDER, user: user, tok: tok, deviceName: req.DeviceName,
		method: "invite"}, log.With(zap.String("upn", user.UPN)))
}

// checkDeviceRequest checks a device enrollment's name and CSR and returns the
// CSR's DER and the device id it will get, before any one-time credential is
// consumed.
func checkDeviceRequest(name, csrPEM string) ([]byte, string, *tenantapi.Error) {
	if err := checkDeviceName(name); err != nil {
		return nil, "", badRequest(tenantapi.ReasonBadRequest, err.Error())
	}
	der, err := decodeCSRPEM(csrPEM)
	if err != nil {
		return nil, "", badRequest(tenantapi.ReasonBadCSR, err.Error())
	}
	csr, err := ParseCSR(der)
	if err != nil {
		return nil, "", badRequest(tenantapi.ReasonBadCSR, err.Error())
	}
	id, err := deviceIDFor(csr)
	if err != nil {
		return nil, "", badRequest(tenantapi.ReasonBadCSR, err.Error())
	}
	return der, id, nil
}

// admin lets a call of the admin API through, or answers it: throttled,
// disabled (no admin_token), or without the bearer token.
func (h *tenantHandler) admin(w http.ResponseWriter, r *http.Request, t *Tenant) bool {
	if h.throttled(w, r) {
		return false
	}
	if t.AdminToken == "" {
		writeError(w, &tenantapi.Error{Status: http.StatusNotFound, Reason: tenantapi.ReasonNotFound,
			Message: "admin API is disabled: set admin_token in the tenant file"})
		return false
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !t.AdminToken.Equal(bearer) {
		h.refusedCredential(r, tenantapi.ReasonBadAdminToken)
		w.Header().Set("WWW-Authenticate", `Bearer realm="ztagent admin"`)
		writeError(w, &tenantapi.Error{Status: http.StatusUnauthorized, Reason: tenantapi.ReasonBadAdminToken,
			Message: "admin API needs Authorization: Bearer <admin_token>"})
		return false
	}
	return true
}

// adminInvite issues an invitation. It requires the tenant file's admin_token
// as a bearer token; without one configured the admin API does not exist.
func (h *tenantHandler) adminInvite(w http.ResponseWriter, r *http.Request, t *Tenant) {
	if !h.admin(w, r, t) {
		return
	}
	var req tenantapi.InviteRequest
	if e := decodeRequest(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	switch {
	case req.Days == 0:
		req.Days = defaultInviteDays
	case req.Days < 1 || req.Days > maxInviteDays:
		writeError(w, badRequest(tenantapi.ReasonBadRequest, "days must be 1 to 90"))
		return
	}
	user := t.User(req.UPN)
	if user == nil {
		writeError(w, &tenantapi.Error{Status: http.StatusNotFound, Reason: tenantapi.ReasonUnknownUser,
			Message: "no user " + truncate(req.UPN) + " in this tenant"})
		return
	}
	key, exp, e := h.invites.issue(user.UPN, req.Days, h.cfg.Now())
	if e != nil {
		writeError(w, e)
		return
	}
	h.log.Info("invitation issued", zap.String("tenant", t.Name), zap.String("upn", user.UPN), zap.Time("expires", exp))
	writeJSON(w, http.StatusCreated, &tenantapi.InviteResponse{UPN: user.UPN, UserKey: string(key), Expires: exp})
}
