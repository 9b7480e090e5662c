package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform/atomicfile"
)

// PublisherEnrollment is what a publisher needs to enroll.
type PublisherEnrollment struct {
	// StateDir keeps the publisher's key and certificate across restarts; empty
	// means enroll afresh every time and keep nothing.
	StateDir  string
	TenantURL string         // base URL of the tenant API
	Roots     *x509.CertPool // verifies the tenant API; nil means system roots
	Name      string
	Token     Secret // registration token from the tenant file
	Log       *zap.Logger
}

// EnrolledPublisher is a publisher's identity: its certificate, the tenant CA
// (which verifies the PoP) and where the PoP is.
type EnrolledPublisher struct {
	Tenant string
	Name   string
	PoP    PoPInfo
	Cert   tls.Certificate
	Roots  *x509.CertPool

	caPEM []byte
}

// publisherFile holds an enrolled publisher (key included, 0600).
const publisherFile = "publisher.json"

// renewBefore is how long before expiry a stored certificate is replaced at
// start: a third of its life, so a publisher restarted weekly never expires.
const renewBefore = leafLifetime / 3

type publisherJSON struct {
	Version     int     `json:"version"`
	Tenant      string  `json:"tenant"`
	Name        string  `json:"name"`
	PoP         PoPInfo `json:"pop"`
	Key         string  `json:"key"`
	Certificate string  `json:"certificate"`
	CA          string  `json:"ca"`
}

// LoadOrEnrollPublisher returns the publisher stored in pe.StateDir when it is
// for pe.Name and not close to expiry, and otherwise enrolls (and stores the
// result). A corrupt state file is logged and replaced by a new enrollment.
func LoadOrEnrollPublisher(ctx context.Context, pe PublisherEnrollment) (*EnrolledPublisher, error) {
	log := pe.Log
	if log == nil {
		log = zap.NewNop()
	}
	if pe.StateDir != "" {
		p, err := loadPublisher(filepath.Join(pe.StateDir, publisherFile))
		switch {
		case err == nil && p.Name == pe.Name && time.Until(p.Cert.Leaf.NotAfter) > renewBefore:
			log.Info("publisher identity loaded", zap.String("tenant", p.Tenant), zap.String("publisher", p.Name),
				zap.Time("expires", p.Cert.Leaf.NotAfter))
			return p, nil
		case err == nil:
			log.Info("publisher identity is for another name or expires soon: enrolling again")
		case !errors.Is(err, fs.ErrNotExist):
			log.Warn("publisher identity unusable: enrolling again", zap.Error(err))
		}
	}
	p, err := EnrollPublisher(ctx, pe, log)
	if err != nil {
		return nil, err
	}
	if pe.StateDir != "" {
		if err := p.save(pe.StateDir); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// EnrollPublisher enrolls a publisher with a key generated here.
func EnrollPublisher(ctx context.Context, pe PublisherEnrollment, log *zap.Logger) (*EnrolledPublisher, error) {
	base, err := normalizeHost(pe.TenantURL)
	if err != nil {
		return nil, errorf(ReasonBadParameter, err, "tenant API URL %v", err)
	}
	key, csr, err := newDeviceKey("publisher " + pe.Name)
	if err != nil {
		return nil, fmt.Errorf("generate publisher key: %w", err)
	}
	req := publisherEnrollRequest{Name: pe.Name, Token: string(pe.Token), CSR: csr}
	resp, err := postEnroll(ctx, base+"/v1/publishers/enroll", pe.Roots, &req, Params{})
	if err != nil {
		return nil, err
	}
	cert, roots, err := checkEnrollResponse(base, resp, key)
	if err != nil {
		return nil, err
	}
	peer, err := PeerIdentity(cert.Leaf)
	if err != nil || peer.Kind != KindPublisher || peer.Publisher != pe.Name || resp.PoP == nil {
		return nil, errorf(ReasonBadResponse, err,
			"tenant API at %s did not answer with a certificate and PoP for publisher %s — check that it runs the same ztcloud version", base, pe.Name)
	}
	log.Info("publisher enrolled", zap.String("tenant", peer.Tenant), zap.String("publisher", pe.Name),
		zap.String("pop", resp.PoP.Address))
	return &EnrolledPublisher{Tenant: peer.Tenant, Name: pe.Name, PoP: *resp.PoP, Cert: cert, Roots: roots,
		caPEM: []byte(resp.CA)}, nil
}

func (p *EnrolledPublisher) save(dir string) error {
	kder, err := x509.MarshalPKCS8PrivateKey(p.Cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("save publisher identity: %w", err)
	}
	data, err := json.MarshalIndent(publisherJSON{Version: identityVersion, Tenant: p.Tenant, Name: p.Name, PoP: p.PoP,
		Key:         string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Cert.Certificate[0]})),
		CA:          string(p.caPEM)}, "", "  ")
	if err != nil {
		return fmt.Errorf("save publisher identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save publisher identity: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, publisherFile), data, 0o600)
}

func loadPublisher(path string) (*EnrolledPublisher, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j publisherJSON
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Version != identityVersion {
		return nil, fmt.Errorf("%s is corrupt or from another version", path)
	}
	cert, err := tls.X509KeyPair([]byte(j.Certificate), []byte(j.Key))
	if err != nil {
		return nil, fmt.Errorf("%s: unusable key or certificate: %w", path, err)
	}
	peer, err := PeerIdentity(cert.Leaf)
	if err != nil || peer.Kind != KindPublisher || peer.Publisher != j.Name || peer.Tenant != j.Tenant {
		return nil, fmt.Errorf("%s: certificate does not match its name", path)
	}
	roots, err := poolFromPEM([]byte(j.CA))
	if err != nil {
		return nil, fmt.Errorf("%s: tenant CA: %w", path, err)
	}
	return &EnrolledPublisher{Tenant: j.Tenant, Name: j.Name, PoP: j.PoP, Cert: cert, Roots: roots,
		caPEM: []byte(j.CA)}, nil
}
