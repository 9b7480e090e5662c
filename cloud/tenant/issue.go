package tenant

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// issue is what every device enrollment method hands issueDevice once it has
// authenticated the request.
type issue struct {
	csrDER     []byte
	user       *User
	tok        *EnrollToken // the secure-enrollment token set presented, or nil
	deviceName string
	method     string // "upn", "invite", "idp": for the log and the device record
}

// issueDevice signs the CSR for the user and answers with the certificate, the
// tenant CA and the initial config, sealed with the token set's encryption
// token when it has one. The answer is built whole before the device is
// recorded, and recorded before it is written (see devices.go): a failure
// before the record leaves nothing behind, and an answer lost after it is
// answered again when the device retries with the same key.
func (h *tenantHandler) issueDevice(w http.ResponseWriter, t *Tenant, in issue, log *zap.Logger) {
	csr, err := ParseCSR(in.csrDER)
	if err != nil {
		writeError(w, badRequest(tenantapi.ReasonBadCSR, err.Error()))
		return
	}
	id, err := deviceIDFor(csr)
	if err != nil {
		writeError(w, badRequest(tenantapi.ReasonBadCSR, err.Error()))
		return
	}
	der, err := h.cfg.CA.SignDevice(in.csrDER, tenantapi.DeviceIdentity{Tenant: t.Name, DeviceID: id, User: in.user.UPN})
	if err != nil {
		writeError(w, badRequest(tenantapi.ReasonBadCSR, err.Error()))
		return
	}
	resp := &tenantapi.EnrollResponse{
		DeviceID:    id,
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		CA:          string(h.cfg.CA.certPEM),
		Tenant:      t.Name,
		User:        in.user.UPN,
	}
	if e := h.attachConfig(resp, t, in.tok); e != nil {
		writeError(w, e)
		return
	}
	tokName := ""
	if in.tok != nil {
		tokName = in.tok.Name
	}
	now := h.cfg.Now()
	if e := h.devices.record(deviceRecord{ID: id, UPN: in.user.UPN, Name: in.deviceName, Method: in.method,
		TokenSet: tokName, Issued: now}); e != nil {
		log.Warn("device enrollment refused", zap.String("device_id", id), zap.String("reason", e.Reason))
		writeError(w, e)
		return
	}
	log.Info("device enrolled", zap.String("method", in.method), zap.String("device_id", id),
		zap.String("device_name", in.deviceName), zap.String("token_set", tokName),
		zap.Bool("config_sealed", resp.SealedConfig != nil))
	if err := writeJSON(w, http.StatusOK, resp); err != nil {
		log.Warn("enrollment answer not delivered; the device's retry with the same key gets it again",
			zap.String("device_id", id), zap.Error(err))
	}
}

// attachConfig puts the user's initial config into resp, sealed when tok has an
// encryption token.
func (h *tenantHandler) attachConfig(resp *tenantapi.EnrollResponse, t *Tenant, tok *EnrollToken) *tenantapi.Error {
	body, e := h.configJSON(t, resp.User)
	if e != nil {
		return e
	}
	if tok == nil || tok.EncryptionToken == "" {
		resp.Config = body
		return nil
	}
	var err error
	if resp.SealedConfig, err = tenantapi.SealConfig(string(tok.EncryptionToken), resp.Tenant, resp.DeviceID, body); err != nil {
		h.log.Error("seal initial config", zap.Error(err))
		return &tenantapi.Error{Status: http.StatusInternalServerError, Reason: tenantapi.ReasonInternal, Message: "internal error"}
	}
	return nil
}

// configJSON is upn's AgentConfig as the agent receives it. A config larger
// than agents accept (tenantapi.MaxConfigBody) is refused here, naming the
// user and the size, rather than sent to be refused by every agent.
func (h *tenantHandler) configJSON(t *Tenant, upn string) ([]byte, *tenantapi.Error) {
	cfg, err := t.AgentConfig(upn)
	var d *DenyError
	if errors.As(err, &d) {
		return nil, &tenantapi.Error{Status: http.StatusForbidden, Reason: d.Reason, Message: d.Error()}
	}
	var body []byte
	if err == nil {
		body, err = json.Marshal(cfg)
	}
	if err != nil {
		h.log.Error("agent config", zap.String("upn", upn), zap.Error(err))
		return nil, &tenantapi.Error{Status: http.StatusInternalServerError, Reason: tenantapi.ReasonInternal, Message: "internal error"}
	}
	if len(body) > h.maxConfig {
		msg := fmt.Sprintf("the config for %s is %d bytes, more than the %d an agent accepts: steer the user to fewer apps",
			cfg.User, len(body), h.maxConfig)
		h.log.Error("config too large", zap.String("upn", cfg.User), zap.Int("apps", len(cfg.Steering.Apps)),
			zap.Int("bytes", len(body)))
		return nil, &tenantapi.Error{Status: http.StatusInternalServerError, Reason: tenantapi.ReasonConfigTooLarge, Message: msg}
	}
	return body, nil
}
