package tenant

import (
	"bytes"
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
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
)

// CA is the tenant's certificate authority. Its key signs device, publisher and
// server certificates; its certificate is what agents and publishers trust.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	now     func() time.Time
}

// File names inside the CA directory. caKeyFile is authoritative (key and
// certificate together, 0600) so that creation is one atomic step; caCertFile is
// the public certificate administrators distribute as the agents' cacert=.
const (
	caKeyFile  = "ca.key.pem"
	caCertFile = "ca.pem"
)

// Certificate lifetimes. Device and publisher certificates are short enough that
// a lost laptop's certificate dies on its own; renewal is the agent's job.
const (
	caLifetime     = 10 * 365 * 24 * time.Hour
	leafLifetime   = 90 * 24 * time.Hour
	serverLifetime = 365 * 24 * time.Hour
	clockSkew      = 5 * time.Minute
)

// LoadOrCreateCA loads the CA persisted in dir, creating it (ECDSA P-256) on
// first start. Creation is safe against another process starting at the same
// moment: the key file is linked into place only if absent, and the loser loads
// the winner's CA.
func LoadOrCreateCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tenant CA: %w", err)
	}
	keyPath := filepath.Join(dir, caKeyFile)
	data, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createCA(keyPath); err != nil {
			return nil, err
		}
		data, err = os.ReadFile(keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("tenant CA: %w", err)
	}
	ca, err := parseCA(data)
	if err != nil {
		return nil, fmt.Errorf("tenant CA %s: %w (restore it from backup; deleting it invalidates every enrolled device)", keyPath, err)
	}
	// The public copy is derived, so rewriting it every start repairs it.
	if err := atomicfile.Write(filepath.Join(dir, caCertFile), ca.certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("tenant CA: %w", err)
	}
	return ca, nil
}

func createCA(keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tenant CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "ztagent tenant CA", Organization: []string{"ztagent"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("tenant CA: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("tenant CA: %w", err)
	}
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return createExclusive(keyPath, buf.Bytes(), 0o600)
}

// createExclusive writes path atomically only if it does not exist yet: the data
// is fsynced under a temporary name, then hard-linked into place, which fails
// if another process got there first (that is not an error: its file wins).
func createExclusive(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new*")
	if err != nil {
		return fmt.Errorf("tenant CA: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			err = nil
		} else if err == nil {
			atomicfile.SyncDir(filepath.Dir(path))
		}
	}
	if err != nil {
		return fmt.Errorf("tenant CA: %w", err)
	}
	return nil
}

func parseCA(data []byte) (*CA, error) {
	var ca CA
	for len(data) > 0 {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("corrupt private key: %w", err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, want ECDSA", k)
			}
			ca.key = ek
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("corrupt certificate: %w", err)
			}
			ca.cert = c
			ca.certPEM = pem.EncodeToMemory(b)
		}
	}
	switch {
	case ca.key == nil || ca.cert == nil:
		return nil, errors.New("file must hold a PRIVATE KEY and a CERTIFICATE block")
	case !ca.cert.IsCA:
		return nil, errors.New("certificate is not a CA")
	case !ca.key.PublicKey.Equal(ca.cert.PublicKey):
		return nil, errors.New("private key does not match the certificate")
	}
	ca.now = time.Now
	return &ca, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM, as distributed to agents.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// Pool returns a new pool holding only the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// IssueServer issues a TLS server certificate for names, each a DNS name or an IP
// address, with a fresh key.
func (ca *CA) IssueServer(names []string) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("server certificate needs at least one name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := ca.template(names[0], serverLifetime, x509.ExtKeyUsageServerAuth)
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// SignDevice signs a device's CSR (DER), binding its key to id. The CSR's own
// subject and extensions are ignored: the identity comes from the tenant only.
func (ca *CA) SignDevice(csrDER []byte, id tenantapi.DeviceIdentity) ([]byte, error) {
	return ca.signClient(csrDER, "device "+id.DeviceID, id.URI())
}

// SignPublisher signs a publisher's CSR (DER), binding its key to id.
func (ca *CA) SignPublisher(csrDER []byte, id tenantapi.PublisherIdentity) ([]byte, error) {
	return ca.signClient(csrDER, "publisher "+id.Name, id.URI())
}

// IssuePublisher issues a publisher certificate with a fresh key, for
// publishers that run inside the tenant's own process and need no enrollment.
func (ca *CA) IssuePublisher(tenant, name string) (tls.Certificate, error) {
	key, csrPEM, err := tenantapi.NewKey("publisher " + name)
	if err != nil {
		return tls.Certificate{}, err
	}
	csrDER, err := decodeCSRPEM(csrPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := ca.SignPublisher(csrDER, tenantapi.PublisherIdentity{Tenant: tenant, Name: name})
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func (ca *CA) signClient(csrDER []byte, cn string, uri string) ([]byte, error) {
	csr, err := ParseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	u, err := tenantapi.ParseIdentityURI(uri)
	if err != nil {
		return nil, err
	}
	tmpl := ca.template(cn, leafLifetime, x509.ExtKeyUsageClientAuth)
	tmpl.URIs = append(tmpl.URIs, u)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return der, nil
}

// ParseCSR parses a CSR in DER, checks its self-signature and accepts only
// ECDSA P-256 keys, the kind agents and publishers generate.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("invalid CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature does not verify: %w", err)
	}
	pk, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pk.Curve != elliptic.P256() {
		return nil, errors.New("CSR key must be ECDSA P-256")
	}
	return csr, nil
}

func (ca *CA) template(cn string, life time.Duration, usage x509.ExtKeyUsage) *x509.Certificate {
	now := ca.now()
	notAfter := now.Add(life)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	return &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand panics on failure since Go 1.24)
	b[0] &= 0x7f // positive
	return new(big.Int).SetBytes(b)
}

// deviceIDFor derives the device id from the device's public key, so that one
// key always has one id and ids cannot be chosen by the client.
func deviceIDFor(csr *x509.CertificateRequest) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(spki)
	return fmt.Sprintf("%x", sum[:10]), nil
}
