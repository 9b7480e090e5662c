// Package agenttest has fakes for the agent's seams, so that tests of the
// agent's lifecycle, restarts, re-authentication and config sync run without
// a tenant server, a CA on disk or a PoP: Enroller issues identities from an
// in-memory CA, and Configs serves a config that the test sets. Neither
// imports the agent; they satisfy agent.Enroller and agent.ConfigSource.
package agenttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"sync"
	"time"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// CA is an in-memory tenant CA.
type CA struct {
	Tenant string
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	pem    []byte
}

// NewCA creates a CA for tenant.
func NewCA(tenant string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: tenant + " test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Tenant: tenant, key: key, cert: cert, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue returns an identity for user with key (a fresh key when nil), valid
// for life, whose tenant API is tenantURL.
func (ca *CA) Issue(tenantURL, user string, key *ecdsa.PrivateKey, life time.Duration) (*enroll.Identity, error) {
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki)
	devID := fmt.Sprintf("%x", sum[:10])
	u, err := url.Parse(tenantapi.DeviceIdentity{Tenant: ca.Tenant, DeviceID: devID, User: user}.URI())
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "device " + devID},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return enroll.NewIdentity(tenantURL, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca.pem, nil)
}

// Call is one call an Enroller received.
type Call struct {
	Kind   string // "enroll", "prelogon", "idp" or "renew"
	Params enroll.Params
}

// Enroller is a fake agent.Enroller: each enrollment issues a new device
// (fresh key) for the UPN the settings name, without a tenant.
type Enroller struct {
	CA *CA
	// TenantURL is the identities' tenant API; "" means https://tenant.test.
	TenantURL string
	// OrgKey, when set, is the only org key (token=) Enroll accepts.
	OrgKey string
	// Life is how long certificates are valid; 0 means 24 hours.
	Life  time.Duration
	mu    sync.Mutex
	hook  func(ctx context.Context, c Call) error
	calls []Call
}

// SetHook sets a function that runs first in every call; an error fails the
// call. It may block to stand in for a slow tenant or a user who takes their
// time to sign in, and decides whether a cancelled ctx fails the call (an
// enrollment may complete at the tenant just as the agent gives up on it).
// nil removes it.
func (e *Enroller) SetHook(hook func(ctx context.Context, c Call) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hook = hook
}

// NewEnroller returns an Enroller with a new CA for tenant.
func NewEnroller(tenant string) (*Enroller, error) {
	ca, err := NewCA(tenant)
	if err != nil {
		return nil, err
	}
	return &Enroller{CA: ca}, nil
}

// Calls lists the calls so far.
func (e *Enroller) Calls() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Call(nil), e.calls...)
}

// Count returns how many calls of kind there were.
func (e *Enroller) Count(kind string) int {
	n := 0
	for _, c := range e.Calls() {
		if c.Kind == kind {
			n++
		}
	}
	return n
}

func (e *Enroller) begin(ctx context.Context, c Call) error {
	e.mu.Lock()
	e.calls = append(e.calls, c)
	hook := e.hook
	e.mu.Unlock()
	if hook != nil {
		return hook(ctx, c) // the hook decides, even whether ctx matters
	}
	return ctx.Err()
}

func (e *Enroller) issue(user string, key *ecdsa.PrivateKey) (*enroll.Identity, error) {
	url, life := e.TenantURL, e.Life
	if url == "" {
		url = "https://tenant.test"
	}
	if life == 0 {
		life = 24 * time.Hour
	}
	return e.CA.Issue(url, user, key, life)
}

// Enroll issues a new device for p.UPN.
func (e *Enroller) Enroll(ctx context.Context, p enroll.Params, _ func(string) error) (*enroll.Identity, error) {
	if err := e.begin(ctx, Call{"enroll", p}); err != nil {
		return nil, err
	}
	if e.OrgKey != "" && !p.Token.Equal(e.OrgKey) {
		return nil, errors.New("the tenant refused the org key (token=)")
	}
	if p.UPN == "" {
		return nil, errors.New("upn= is not set")
	}
	return e.issue(p.UPN, nil)
}

// EnrollPreLogon issues a new device for p.PreLogonUser.
func (e *Enroller) EnrollPreLogon(ctx context.Context, p enroll.Params) (*enroll.Identity, error) {
	if err := e.begin(ctx, Call{"prelogon", p}); err != nil {
		return nil, err
	}
	if p.PreLogonUser == "" {
		return nil, errors.New("prelogonuser= is not set")
	}
	return e.issue(p.PreLogonUser, nil)
}

// EnrollIdP stands for a sign-in that succeeds (unless Hook says otherwise):
// a new device for p.UPN.
func (e *Enroller) EnrollIdP(ctx context.Context, p enroll.Params, _ func(string) error) (*enroll.Identity, error) {
	if err := e.begin(ctx, Call{"idp", p}); err != nil {
		return nil, err
	}
	if p.UPN == "" {
		return nil, errors.New("upn= is not set")
	}
	return e.issue(p.UPN, nil)
}

// Renew issues a new certificate for id's key and user.
func (e *Enroller) Renew(ctx context.Context, id *enroll.Identity) (*enroll.Identity, error) {
	if err := e.begin(ctx, Call{Kind: "renew"}); err != nil {
		return nil, err
	}
	key, ok := id.Cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("identity has no ECDSA key")
	}
	return e.issue(id.User, key)
}

// Pool returns a pool holding the CA, as servers check device certificates.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// IssueServer returns a server certificate for names (DNS names) with a
// fresh key, for test servers the agent verifies against the tenant CA
// (the L3E gateway).
func (ca *CA) IssueServer(names ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
