package enroll

import (
	"bytes"
	"crypto/ecdsa"
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

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
)

// Identity is an enrolled device: who it is, where its tenant is, its key and
// certificate, and whom it trusts.
type Identity struct {
	Tenant    string
	User      string
	DeviceID  string
	TenantURL string // base URL of the tenant API
	Cert      tls.Certificate
	// Roots holds the tenant CA; it verifies the PoP.
	Roots *x509.CertPool
	// APIRoots verifies the tenant API; nil means the system roots.
	APIRoots *x509.CertPool
	// InitialConfig is the config the tenant delivered with the enrollment
	// (decrypted when it was sealed); nil after LoadIdentity and from tenants
	// that do not send one. It is not persisted: apply it and cache it like a
	// fetched config.
	InitialConfig *tenantapi.AgentConfig
	// Recovered, after LoadIdentity, says why identity.json was unusable and
	// that the last good copy replaced it; "" normally. Log it.
	Recovered string

	caPEM    []byte
	apiCAPEM []byte
}

// Expires is when the device certificate stops being valid.
func (id *Identity) Expires() time.Time { return id.Cert.Leaf.NotAfter }

// TLSConfig returns the client TLS config for dialing the PoP as this device:
// the device certificate, the tenant CA as the only root, and serverName (the
// AgentConfig's PoP.ServerName) checked against the PoP's certificate.
func (id *Identity) TLSConfig(serverName string) (*tls.Config, error) {
	switch {
	case serverName == "":
		return nil, errors.New("PoP TLS: the config names no PoP server name")
	case len(id.Cert.Certificate) == 0 || id.Roots == nil:
		return nil, errors.New("PoP TLS: identity has no device certificate or tenant CA; enroll again")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		RootCAs:      id.Roots,
		ServerName:   serverName,
	}, nil
}

// identityFile is the one file an identity lives in. Key, certificate and
// metadata are written together in one atomic rename, so a crash can never
// leave a key beside another key's certificate. It holds the private key: 0600.
//
// identityGoodFile is the last good copy: LoadIdentity refreshes it from every
// identity.json that loads, and restores identity.json from it when that file
// is corrupt or truncated (a failing disk, a careless edit, a restored backup).
const (
	identityFile     = "identity.json"
	identityGoodFile = "identity.last-good.json"
	identityVersion  = 1
)

type identityJSON struct {
	Version     int    `json:"version"`
	Tenant      string `json:"tenant"`
	User        string `json:"user"`
	DeviceID    string `json:"device_id"`
	TenantURL   string `json:"tenant_url"`
	Key         string `json:"key"`         // PEM PKCS#8
	Certificate string `json:"certificate"` // PEM
	CA          string `json:"ca"`          // PEM, tenant CA
	APICA       string `json:"api_ca,omitempty"`
}

// Save writes the identity into stateDir atomically, the file readable only by
// its owner.
func (id *Identity) Save(stateDir string) error {
	key, ok := id.Cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || len(id.Cert.Certificate) == 0 {
		return errors.New("save identity: no ECDSA key and certificate")
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	data, err := json.MarshalIndent(identityJSON{
		Version: identityVersion, Tenant: id.Tenant, User: id.User, DeviceID: id.DeviceID,
		TenantURL:   id.TenantURL,
		Key:         string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.Cert.Certificate[0]})),
		CA:          string(id.caPEM),
		APICA:       string(id.apiCAPEM),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(stateDir, identityFile), data, 0o600); err != nil {
		return err
	}
	// A crash here leaves the older last-good copy; the next load refreshes it.
	return atomicfile.Write(filepath.Join(stateDir, identityGoodFile), data, 0o600)
}

// LoadIdentity reads the identity from stateDir. With no identity it returns
// ErrNotEnrolled. When identity.json cannot be trusted (truncated, edited, key
// not matching certificate) but the last good copy can, that copy is restored
// and returned with Recovered set; when neither can, the error wraps
// ErrCorruptIdentity and says why: the caller enrolls again.
func LoadIdentity(stateDir string) (*Identity, error) {
	path := filepath.Join(stateDir, identityFile)
	goodPath := filepath.Join(stateDir, identityGoodFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = nil, nil
		if _, gerr := os.Stat(goodPath); gerr != nil {
			return nil, ErrNotEnrolled
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	id, why := parseIdentity(data)
	if data == nil {
		why = "is missing"
	}
	if why == "" {
		if good, err := os.ReadFile(goodPath); err != nil || !bytes.Equal(good, data) {
			// Best effort: a failure leaves the older copy, still a good one.
			atomicfile.Write(goodPath, data, 0o600)
		}
		return id, nil
	}
	good, err := os.ReadFile(goodPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s and there is no last good copy; enroll again to replace it", ErrCorruptIdentity, path, why)
	}
	id, gwhy := parseIdentity(good)
	if gwhy != "" {
		return nil, fmt.Errorf("%w: %s %s and its last good copy %s; enroll again to replace it", ErrCorruptIdentity, path, why, gwhy)
	}
	if err := atomicfile.Write(path, good, 0o600); err != nil {
		return nil, fmt.Errorf("%w: %s %s and restoring the last good copy failed: %v", ErrCorruptIdentity, path, why, err)
	}
	id.Recovered = path + " " + why + "; restored from " + identityGoodFile
	return id, nil
}

// parseIdentity returns the identity, or why the data cannot be one.
func parseIdentity(data []byte) (*Identity, string) {
	var j identityJSON
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, "is not valid JSON (" + err.Error() + ")"
	}
	switch {
	case j.Version != identityVersion:
		return nil, fmt.Sprintf("has version %d, want %d", j.Version, identityVersion)
	case j.Tenant == "" || j.User == "" || j.DeviceID == "" || j.TenantURL == "":
		return nil, "lacks tenant, user, device_id or tenant_url"
	}
	cert, err := tls.X509KeyPair([]byte(j.Certificate), []byte(j.Key))
	if err != nil {
		return nil, "has an unusable key or certificate (" + err.Error() + ")"
	}
	peer, err := tenantapi.PeerIdentity(cert.Leaf)
	if err != nil || peer.Kind != tenantapi.KindDevice || peer.Tenant != j.Tenant || peer.User != j.User || peer.Device != j.DeviceID {
		return nil, "has a certificate that does not match its tenant, user and device"
	}
	id := &Identity{Tenant: j.Tenant, User: j.User, DeviceID: j.DeviceID, TenantURL: j.TenantURL,
		Cert: cert, caPEM: []byte(j.CA)}
	if id.Roots, err = tenantapi.PoolFromPEM(id.caPEM); err != nil {
		return nil, "has an unusable tenant CA (" + err.Error() + ")"
	}
	if j.APICA != "" {
		id.apiCAPEM = []byte(j.APICA)
		if id.APIRoots, err = tenantapi.PoolFromPEM(id.apiCAPEM); err != nil {
			return nil, "has an unusable tenant API CA (" + err.Error() + ")"
		}
	}
	return id, ""
}
