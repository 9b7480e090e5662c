package tenantapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ztagent/ztagent/steering"
)

// What both enrolling clients (the agent and a publisher) do alike: name the
// tenant API, make a key that never leaves the process with its CSR, and check
// the certificate the tenant answers with.

// BaseURL turns a tenant API host ("host[:port]" or an https URL) into the
// API's base URL: "https://host[:port]" plus any path, without a trailing slash.
func BaseURL(h string) (string, error) {
	raw := h
	if !strings.Contains(h, "://") {
		raw = "https://" + h
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%q is not a host[:port] or https:// URL", h)
	case u.Scheme != "https":
		return "", fmt.Errorf("%q: the tenant API is reached over https only", h)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("%q: no user, query or fragment allowed", h)
	}
	if port := u.Port(); port != "" {
		if _, err := steering.ParsePort(port); err != nil {
			return "", fmt.Errorf("%q: %w", h, err)
		}
	}
	return "https://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

// NewKey generates an ECDSA P-256 key and a PEM CSR for it with common name
// cn. The key never leaves this process except into a 0600 state file.
func NewKey(cn string) (*ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, "", err
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// CheckIssued checks that the certificate of an enrollment answer is for key
// and chains, as a client certificate, to the tenant CA the answer names, and
// returns it with that CA as a pool. An error says what is wrong with it.
func CheckIssued(r *EnrollResponse, key *ecdsa.PrivateKey) (tls.Certificate, *x509.CertPool, error) {
	roots, err := PoolFromPEM([]byte(r.CA))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tenant CA: %w", err)
	}
	b, _ := pem.Decode([]byte(r.Certificate))
	if b == nil || b.Type != "CERTIFICATE" {
		return tls.Certificate{}, nil, errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return tls.Certificate{}, nil, errors.New("not for this device's key")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{b.Bytes}, PrivateKey: key, Leaf: leaf}, roots, nil
}

// PoolFromPEM parses one or more PEM certificates into a new pool; anything
// else in the data is an error.
func PoolFromPEM(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if strings.TrimSpace(string(rest)) != "" {
				return nil, errors.New("data that is not a PEM certificate")
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return pool, nil
}
