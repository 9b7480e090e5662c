package tenant

import (
	"encoding/pem"
	"net/http"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// Device certificate renewal: a device presenting its valid certificate over
// mutual TLS gets a new one for a new key, with the same device id and user.

// renew signs a new certificate for the device presenting a valid one.
func (h *tenantHandler) renew(w http.ResponseWriter, r *http.Request, t *Tenant) {
	peer, e := verifiedDevice(r, t)
	if e == nil && t.User(peer.User) == nil {
		e = &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonUnknownUser,
			Message: "user " + peer.User + " is no longer a member of this tenant"}
	}
	if e != nil {
		h.log.Warn("renewal refused", zap.String("reason", e.Reason), zap.String("remote", r.RemoteAddr))
		writeError(w, e)
		return
	}
	if err := h.devices.confirm(peer, h.cfg.Now()); err != nil {
		h.log.Warn("cannot record the device as confirmed", zap.String("device_id", peer.Device), zap.Error(err))
	}
	var req tenantapi.RenewRequest
	if e := decodeRequest(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	der, err := decodeCSRPEM(req.CSR)
	if err == nil {
		der, err = h.cfg.CA.SignDevice(der, tenantapi.DeviceIdentity{Tenant: t.Name, DeviceID: peer.Device, User: peer.User})
	}
	if err != nil {
		writeError(w, badRequest(tenantapi.ReasonBadCSR, err.Error()))
		return
	}
	h.log.Info("device certificate renewed", zap.String("tenant", t.Name), zap.String("upn", peer.User),
		zap.String("device_id", peer.Device))
	writeJSON(w, http.StatusOK, &tenantapi.EnrollResponse{
		DeviceID:    peer.Device,
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		CA:          string(h.cfg.CA.certPEM),
		Tenant:      t.Name,
		User:        peer.User,
	})
}
