package tenant

import (
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// adminOverrideCode issues a one-time tamper override code for an enrolled
// device (POST /v1/admin/override-codes, bearer admin_token): the tenant
// keeps the private key (tamper_override_private_key) and signs (device ID,
// expiry) with it, as `ztdiag tamper-code` does offline. The code is issued
// only when it would work: the device is enrolled, its user is still in the
// tenant, and the steering profile the user gets sets the private key's
// public key as client.tamper_override_key. The code is never logged.
func (h *tenantHandler) adminOverrideCode(w http.ResponseWriter, r *http.Request, t *Tenant) {
	if !h.admin(w, r, t) {
		return
	}
	if t.TamperOverridePrivateKey == "" {
		writeError(w, &tenantapi.Error{Status: http.StatusNotFound, Reason: tenantapi.ReasonNoOverrideKey,
			Message: "override codes are disabled: set tamper_override_private_key in the tenant file"})
		return
	}
	var req tenantapi.OverrideCodeRequest
	if e := decodeRequest(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	valid, err := time.ParseDuration(req.ValidFor)
	if err != nil || valid <= 0 || valid > steering.MaxOverrideValidity {
		writeError(w, badRequest(tenantapi.ReasonBadRequest, fmt.Sprintf("valid_for must be a duration up to %v, e.g. \"4h\"", steering.MaxOverrideValidity)))
		return
	}
	rec, ok := h.devices.get(req.DeviceID)
	if !ok {
		writeError(w, &tenantapi.Error{Status: http.StatusNotFound, Reason: tenantapi.ReasonUnknownDevice,
			Message: "no device " + truncate(req.DeviceID) + " enrolled in this tenant"})
		return
	}
	user := t.User(rec.UPN)
	if user == nil {
		writeError(w, &tenantapi.Error{Status: http.StatusNotFound, Reason: tenantapi.ReasonUnknownUser,
			Message: "the device's user " + truncate(rec.UPN) + " is no longer in this tenant"})
		return
	}
	if p := t.profileOf(user); p < 0 || t.profile[p].p.Client.TamperOverrideKey != t.overridePub {
		writeError(w, &tenantapi.Error{Status: http.StatusConflict, Reason: tenantapi.ReasonNoOverrideKey,
			Message: "the steering profile of " + user.UPN + " does not set client.tamper_override_key to this tenant's key: the device would refuse the code"})
		return
	}
	expires := h.cfg.Now().Add(valid).Truncate(time.Second)
	code, err := steering.IssueTamperOverride(string(t.TamperOverridePrivateKey), rec.ID, expires)
	if err != nil {
		writeError(w, &tenantapi.Error{Status: http.StatusInternalServerError, Reason: tenantapi.ReasonInternal, Message: "issue the code: " + err.Error()})
		return
	}
	resp := &tenantapi.OverrideCodeResponse{DeviceID: rec.ID, UPN: user.UPN, Code: code, Expires: expires}
	h.log.Info("override code issued", zap.String("tenant", t.Name), zap.String("device", rec.ID), zap.String("upn", user.UPN),
		zap.Time("expires", expires))
	writeJSON(w, http.StatusCreated, resp)
}
