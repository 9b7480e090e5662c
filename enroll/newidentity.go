package enroll

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// NewIdentity assembles an identity from what an enrollment yields: the
// tenant API's base URL, the device certificate with its key, the tenant CA
// (PEM) and, when the tenant API has its own, that CA (PEM, else nil). Who
// the device is comes from the certificate's identity, checked as
// LoadIdentity checks it. Enrollers other than this package's (the fake in
// agent/agenttest) build their identities with it.
func NewIdentity(tenantURL string, cert tls.Certificate, caPEM, apiCAPEM []byte) (*Identity, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, errors.New("identity: no certificate or key")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		cert.Leaf = leaf
	}
	peer, err := tenantapi.PeerIdentity(leaf)
	if err != nil || peer.Kind != tenantapi.KindDevice {
		return nil, fmt.Errorf("identity: not a device certificate: %v", err)
	}
	url, err := tenantapi.BaseURL(tenantURL)
	if err != nil {
		return nil, fmt.Errorf("identity: tenant URL %w", err)
	}
	id := &Identity{Tenant: peer.Tenant, User: peer.User, DeviceID: peer.Device, TenantURL: url, Cert: cert,
		caPEM: caPEM, apiCAPEM: apiCAPEM}
	if id.Roots, err = tenantapi.PoolFromPEM(caPEM); err != nil {
		return nil, fmt.Errorf("identity: tenant CA: %w", err)
	}
	if len(apiCAPEM) > 0 {
		if id.APIRoots, err = tenantapi.PoolFromPEM(apiCAPEM); err != nil {
			return nil, fmt.Errorf("identity: tenant API CA: %w", err)
		}
	}
	return id, nil
}
