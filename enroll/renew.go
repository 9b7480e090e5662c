package enroll

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// Device certificate renewal. A device certificate lives 90 days; the agent
// renews it in the last third of its life, over mutual TLS with the current
// certificate, with a new key each time. The tenant keeps the device id and
// user of the presented certificate, so renewal needs no user and no token; a
// device whose certificate has expired can no longer prove who it is and
// enrolls again.

// RenewAt is when the device certificate should be renewed: once two thirds of
// its lifetime have passed (day 60 of 90).
func (id *Identity) RenewAt() time.Time {
	leaf := id.Cert.Leaf
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life - life/3)
}

// NeedsRenewal reports whether the certificate should be renewed at now.
func (id *Identity) NeedsRenewal(now time.Time) bool { return !now.Before(id.RenewAt()) }

// Renew obtains a new device certificate for a new key from id's tenant,
// authenticating with id's current certificate. It returns a new Identity (id
// is unchanged) for the caller to Save; on error id stays in force until it
// expires. Failures are *Error with one sentence.
func Renew(ctx context.Context, id *Identity, log *zap.Logger) (*Identity, error) {
	if id == nil || len(id.Cert.Certificate) == 0 || id.Cert.Leaf == nil {
		return nil, errorf(ReasonBadParameter, nil, "renew: no device certificate; enroll first")
	}
	key, csr, err := tenantapi.NewKey(id.User)
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	body, err := json.Marshal(tenantapi.RenewRequest{CSR: csr})
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
	var out tenantapi.EnrollResponse
	if err := tenantapi.DecodeAnswer(resp.Body, tenantapi.MaxCertAnswer, &out); err != nil {
		// A lost renewal answer costs nothing: the current certificate stays
		// in force and the next attempt renews with a new key.
		return nil, explainAnswer(id.TenantURL, "renewal answer", err)
	}
	cert, roots, err := checkEnrollResponse(id.TenantURL, &out, key)
	if err != nil {
		return nil, err
	}
	if peer, _ := tenantapi.PeerIdentity(cert.Leaf); peer.Kind != tenantapi.KindDevice || peer.Tenant != id.Tenant ||
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
