package publisher

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
)

// Enrollment is what a publisher needs to enroll.
type Enrollment struct {
	// StateDir keeps the publisher's key and certificate across restarts; empty
	// means enroll afresh every time and keep nothing.
	StateDir  string
	TenantURL string         // base URL of the tenant API
	Roots     *x509.CertPool // verifies the tenant API; nil means system roots
	Name      string
	Token     tenantapi.Secret // registration token from the tenant file
	Log       *zap.Logger
}

// Identity is a publisher's identity: its certificate, the tenant CA
// (which verifies the PoP) and where the PoP is (PoPs, when the tenant has
// several, as they were at enrollment: the publisher dials every one).
type Identity struct {
	Tenant string
	Name   string
	PoP    tenantapi.PoPInfo
	PoPs   []tenantapi.PoPInfo
	Cert   tls.Certificate
	Roots  *x509.CertPool

	caPEM []byte
}

// publisherFile holds an enrolled publisher (key included, 0600).
const publisherFile = "publisher.json"

// publisherVersion is the version of publisherFile's format.
const publisherVersion = 1

// enrollTimeout bounds an enrollment request; the caller's context can only
// shorten it.
const enrollTimeout = 30 * time.Second

// renewDue reports whether a stored certificate is to be replaced at start: in
// the last third of its life, so a publisher restarted weekly never expires.
func renewDue(leaf *x509.Certificate) bool {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return time.Until(leaf.NotAfter) <= life/3
}

type publisherJSON struct {
	Version     int                 `json:"version"`
	Tenant      string              `json:"tenant"`
	Name        string              `json:"name"`
	PoP         tenantapi.PoPInfo   `json:"pop"`
	PoPs        []tenantapi.PoPInfo `json:"pops,omitempty"`
	Key         string              `json:"key"`
	Certificate string              `json:"certificate"`
	CA          string              `json:"ca"`
}

// LoadOrEnroll returns the publisher stored in pe.StateDir when it is
// for pe.Name and not close to expiry, and otherwise enrolls (and stores the
// result). A corrupt state file is logged and replaced by a new enrollment.
func LoadOrEnroll(ctx context.Context, pe Enrollment) (*Identity, error) {
	log := pe.Log
	if log == nil {
		log = zap.NewNop()
	}
	if pe.StateDir != "" {
		p, err := loadPublisher(filepath.Join(pe.StateDir, publisherFile))
		switch {
		case err == nil && p.Name == pe.Name && !renewDue(p.Cert.Leaf):
			log.Info("publisher identity loaded", zap.String("tenant", p.Tenant), zap.String("publisher", p.Name),
				zap.Time("expires", p.Cert.Leaf.NotAfter))
			return p, nil
		case err == nil:
			log.Info("publisher identity is for another name or expires soon: enrolling again")
		case !errors.Is(err, fs.ErrNotExist):
			log.Warn("publisher identity unusable: enrolling again", zap.Error(err))
		}
	}
	p, err := Enroll(ctx, pe, log)
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

// Enroll enrolls a publisher with a key generated here.
func Enroll(ctx context.Context, pe Enrollment, log *zap.Logger) (*Identity, error) {
	base, err := tenantapi.BaseURL(pe.TenantURL)
	if err != nil {
		return nil, fmt.Errorf("tenant API URL %w", err)
	}
	key, csr, err := tenantapi.NewKey("publisher " + pe.Name)
	if err != nil {
		return nil, fmt.Errorf("generate publisher key: %w", err)
	}
	req := tenantapi.PublisherEnrollRequest{Name: pe.Name, Token: string(pe.Token), CSR: csr}
	resp, err := postEnroll(ctx, base, pe.Roots, &req)
	if err != nil {
		return nil, err
	}
	cert, roots, err := tenantapi.CheckIssued(resp, key)
	if err != nil {
		return nil, fmt.Errorf("tenant API at %s sent an unusable certificate (%w) — report this to the tenant administrator", base, err)
	}
	peer, err := tenantapi.PeerIdentity(cert.Leaf)
	if err != nil || peer.Kind != tenantapi.KindPublisher || peer.Publisher != pe.Name || resp.PoP == nil {
		return nil, fmt.Errorf("tenant API at %s did not answer with a certificate and PoP for publisher %s — check that it runs the same ztcloud version", base, pe.Name)
	}
	log.Info("publisher enrolled", zap.String("tenant", peer.Tenant), zap.String("publisher", pe.Name),
		zap.String("pop", resp.PoP.Address))
	return &Identity{Tenant: peer.Tenant, Name: pe.Name, PoP: *resp.PoP, PoPs: resp.PoPs, Cert: cert, Roots: roots,
		caPEM: []byte(resp.CA)}, nil
}

// postEnroll sends the enrollment and decodes a 200 answer; anything else is
// an error that says what to check.
func postEnroll(ctx context.Context, base string, roots *x509.CertPool, body *tenantapi.PublisherEnrollRequest) (*tenantapi.EnrollResponse, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, enrollTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/publishers/enroll", bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("bad tenant API URL %s: %w", base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach tenant API at %s: %w — check --tenant-url, --cacert and that the tenant is running", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e tenantapi.Error
		if err := json.NewDecoder(io.LimitReader(resp.Body, tenantapi.MaxErrorBody)).Decode(&e); err != nil || e.Reason == "" {
			return nil, fmt.Errorf("tenant API at %s answered HTTP %s without a tenant error — check that --tenant-url points at the tenant API", base, resp.Status)
		}
		if e.Reason == tenantapi.ReasonBadPublisherToken {
			return nil, errors.New("tenant rejected the publisher name or registration token: check both against the tenant file")
		}
		return nil, fmt.Errorf("tenant API at %s refused the enrollment: %.200q (HTTP %d, %s)", base, e.Message, resp.StatusCode, e.Reason)
	}
	var out tenantapi.EnrollResponse
	switch err := tenantapi.DecodeAnswer(resp.Body, tenantapi.MaxCertAnswer, &out); {
	case errors.Is(err, tenantapi.ErrAnswerTooLarge), errors.Is(err, tenantapi.ErrAnswerCut):
		// A publisher's enrollment records nothing: retrying is always safe.
		return nil, fmt.Errorf("tenant API at %s: %w — retry; if it persists, check that --tenant-url points at the tenant API", base, err)
	case err != nil:
		return nil, fmt.Errorf("tenant API at %s sent a malformed enrollment answer (%w) — check that --tenant-url points at the tenant API", base, err)
	}
	return &out, nil
}

func (p *Identity) save(dir string) error {
	kder, err := x509.MarshalPKCS8PrivateKey(p.Cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("save publisher identity: %w", err)
	}
	data, err := json.MarshalIndent(publisherJSON{Version: publisherVersion, Tenant: p.Tenant, Name: p.Name, PoP: p.PoP, PoPs: p.PoPs,
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

func loadPublisher(path string) (*Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j publisherJSON
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Version != publisherVersion {
		return nil, fmt.Errorf("%s is corrupt or from another version", path)
	}
	cert, err := tls.X509KeyPair([]byte(j.Certificate), []byte(j.Key))
	if err != nil {
		return nil, fmt.Errorf("%s: unusable key or certificate: %w", path, err)
	}
	peer, err := tenantapi.PeerIdentity(cert.Leaf)
	if err != nil || peer.Kind != tenantapi.KindPublisher || peer.Publisher != j.Name || peer.Tenant != j.Tenant {
		return nil, fmt.Errorf("%s: certificate does not match its name", path)
	}
	roots, err := tenantapi.PoolFromPEM([]byte(j.CA))
	if err != nil {
		return nil, fmt.Errorf("%s: tenant CA: %w", path, err)
	}
	return &Identity{Tenant: j.Tenant, Name: j.Name, PoP: j.PoP, PoPs: j.PoPs, Cert: cert, Roots: roots,
		caPEM: []byte(j.CA)}, nil
}

// DialList returns the PoPs the publisher dials: PoPs, or PoP alone.
func (p *Identity) DialList() []tenantapi.PoPInfo { return tenantapi.PoPList(p.PoP, p.PoPs) }
