package enroll

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Device certificate renewal. A device certificate lives 90 days; the agent
// renews it in the last third of its life, over mutual TLS with the current
// certificate, with a new key each time. The tenant keeps the device id and
// user of the presented certificate, so renewal needs no user and no token; a
// device whose certificate has expired can no longer prove who it is and
// enrolls again.

// renewRequest is POST /v1/renew.
type renewRequest struct {
	CSR string `json:"csr"`
}

// RenewAt is when the device certificate should be renewed: once two thirds of
// its lifetime have passed (day 60 of 90).
func (id *Identity) RenewAt() time.Time {
	leaf := id.Cert.Leaf
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life - life/3)
}

// NeedsRenewal reports whether the certificate should be renewed at now.
func (id *Identity) NeedsRenewal(now time.Time) bool { return !now.Before(id.RenewAt()) }

// renew signs a new certificate for the device presenting a valid one.
func (h *tenantHandler) renew(w http.ResponseWriter, r *http.Request, t *Tenant) {
	peer, e := verifiedDevice(r, t)
	if e == nil && t.User(peer.User) == nil {
		e = &apiError{Status: http.StatusForbidden, Reason: ReasonUnknownUser,
			Message: "user " + peer.User + " is no longer a member of this tenant"}
	}
	if e != nil {
		h.log.Warn("renewal refused", zap.String("reason", e.Reason), zap.String("remote", r.RemoteAddr))
		writeError(w, e)
		return
	}
	var req renewRequest
	if e := decodeRequest(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	der, err := decodeCSRPEM(req.CSR)
	if err == nil {
		der, err = h.cfg.CA.SignDevice(der, DeviceIdentity{Tenant: t.Name, DeviceID: peer.Device, User: peer.User})
	}
	if err != nil {
		writeError(w, badRequest(ReasonBadCSR, err.Error()))
		return
	}
	h.log.Info("device certificate renewed", zap.String("tenant", t.Name), zap.String("upn", peer.User),
		zap.String("device_id", peer.Device))
	writeJSON(w, http.StatusOK, &enrollResponse{
		DeviceID:    peer.Device,
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		CA:          string(h.cfg.CA.certPEM),
		Tenant:      t.Name,
		User:        peer.User,
	})
}

// Renew obtains a new device certificate for a new key from id's tenant,
// authenticating with id's current certificate. It returns a new Identity (id
// is unchanged) for the caller to Save; on error id stays in force until it
// expires. Failures are *Error with one sentence.
func Renew(ctx context.Context, id *Identity, log *zap.Logger) (*Identity, error) {
	if id == nil || len(id.Cert.Certificate) == 0 || id.Cert.Leaf == nil {
		return nil, errorf(ReasonBadParameter, nil, "renew: no device certificate; enroll first")
	}
	key, csr, err := newDeviceKey(id.User)
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	body, err := json.Marshal(renewRequest{CSR: csr})
	if err != nil {
		return nil, err
	}
	tr := newTransport(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: id.APIRoots,
		Certificates: []tls.Certificate{id.Cert}})
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, id.TenantURL+"/v1/renew", bytes.NewReader(body))
	if err != nil {
		return nil, errorf(ReasonBadResponse, err, "bad tenant API URL in the identity (%v) — enroll the device again", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, explainTransport(id.TenantURL, err, "")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, explainStatus(id.TenantURL, resp, Params{UPN: id.User})
	}
	var out enrollResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxRequestBody)).Decode(&out); err != nil {
		return nil, errorf(ReasonBadResponse, err, "tenant API at %s sent a malformed renewal answer (%v)", id.TenantURL, err)
	}
	cert, roots, err := checkEnrollResponse(id.TenantURL, &out, key)
	if err != nil {
		return nil, err
	}
	if peer, _ := PeerIdentity(cert.Leaf); peer.Kind != KindDevice || peer.Tenant != id.Tenant ||
		peer.Device != id.DeviceID || peer.User != id.User {
		return nil, errorf(ReasonBadResponse, nil,
			"tenant API at %s renewed the certificate for another identity — report this to the tenant administrator", id.TenantURL)
	}
	next := *id
	next.Cert, next.Roots, next.caPEM = cert, roots, []byte(out.CA)
	next.InitialConfig, next.Recovered = nil, ""
	log.Info("device certificate renewed", zap.String("device_id", id.DeviceID), zap.Time("expires", next.Expires()))
	return &next, nil
}
