package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/ztagent/ztagent/cloud/tenant"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testIdentity builds an identity signed by a fresh CA, without a server.
func testIdentity(t *testing.T) *Identity {
	t.Helper()
	ca, err := tenant.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, csrPEM, err := tenantapi.NewKey("alice@demo.test")
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := pem.Decode([]byte(csrPEM))
	const devID = "0123456789abcdef0123"
	der, err := ca.SignDevice(csr.Bytes, tenantapi.DeviceIdentity{Tenant: "demo", DeviceID: devID, User: "alice@demo.test"})
	if err != nil {
		t.Fatal(err)
	}
	cert, roots, err := checkEnrollResponse("https://t", &tenantapi.EnrollResponse{CA: string(ca.CertPEM()),
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Tenant: "demo", User: "alice@demo.test", DeviceID: devID, TenantURL: "https://t:8444",
		Cert: cert, Roots: roots, caPEM: ca.CertPEM()}
}

func TestIdentitySaveLoad(t *testing.T) {
	id := testIdentity(t)
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := LoadIdentity(dir); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("empty dir: %v, want ErrNotEnrolled", err)
	}
	if err := id.Save(dir); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(filepath.Join(dir, identityFile))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("identity file mode = %v, %v; want 0600", st.Mode().Perm(), err)
		}
	}
	got, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tenant != id.Tenant || got.User != id.User || got.DeviceID != id.DeviceID ||
		got.TenantURL != id.TenantURL || got.APIRoots != nil || !got.Cert.Leaf.Equal(id.Cert.Leaf) ||
		!got.Cert.PrivateKey.(*ecdsa.PrivateKey).Equal(id.Cert.PrivateKey) {
		t.Errorf("round trip changed the identity: %+v", got)
	}
	if _, err := got.Cert.Leaf.Verify(x509.VerifyOptions{Roots: got.Roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("loaded roots do not verify the certificate: %v", err)
	}
	// No temporary files are left behind: the identity and its last good copy.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("state dir holds %d entries, want 2", len(entries))
	}
}

func TestIdentityCorrupt(t *testing.T) {
	id := testIdentity(t)
	dir := t.TempDir()
	if err := id.Save(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, identityFile)
	good, _ := os.ReadFile(path)
	var j identityJSON
	if err := json.Unmarshal(good, &j); err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kder, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	mutate := func(f func(*identityJSON)) []byte {
		c := j
		f(&c)
		b, _ := json.Marshal(c)
		return b
	}
	tests := []struct {
		name string
		data []byte
		why  string
	}{
		{"truncated", good[:len(good)/2], "is not valid JSON"},
		{"empty", nil, "is not valid JSON"},
		{"garbage", []byte("\x00\x01binary"), "is not valid JSON"},
		{"unknown field", []byte(strings.Replace(string(good), "{", `{"extra":1,`, 1)), "is not valid JSON"},
		{"future version", mutate(func(c *identityJSON) { c.Version = 9 }), "has version 9"},
		{"missing user", mutate(func(c *identityJSON) { c.User = "" }), "lacks tenant"},
		{"other key", mutate(func(c *identityJSON) {
			c.Key = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
		}), "unusable key or certificate"},
		{"edited user", mutate(func(c *identityJSON) { c.User = "mallory@demo.test" }), "does not match"},
		{"bad ca", mutate(func(c *identityJSON) { c.CA = "not pem" }), "unusable tenant CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			// With the last good copy the identity is restored from it.
			if err := os.WriteFile(filepath.Join(dir, identityGoodFile), good, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadIdentity(dir)
			if err != nil || got.DeviceID != id.DeviceID || !strings.Contains(got.Recovered, tc.why) {
				t.Fatalf("recovery: %v, recovered %q", err, got.Recovered)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
				t.Fatal("identity.json was not restored")
			}
			// Without it (or with a bad one too) the device must enroll again.
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, identityGoodFile), tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = LoadIdentity(dir)
			if !errors.Is(err, ErrCorruptIdentity) || !strings.Contains(err.Error(), tc.why) ||
				!strings.Contains(err.Error(), "enroll again") {
				t.Errorf("err = %v, want ErrCorruptIdentity saying %q", err, tc.why)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Error("error leaks key material")
			}
			os.Remove(filepath.Join(dir, identityGoodFile))
			if _, err = LoadIdentity(dir); !errors.Is(err, ErrCorruptIdentity) || !strings.Contains(err.Error(), "no last good copy") {
				t.Errorf("without a last good copy: %v", err)
			}
		})
	}
	// identity.json deleted, last good copy present: restored.
	os.Remove(path)
	os.WriteFile(filepath.Join(dir, identityGoodFile), good, 0o600)
	if got, err := LoadIdentity(dir); err != nil || !strings.Contains(got.Recovered, "is missing") {
		t.Errorf("missing identity.json: %v", err)
	}
}

func TestIdentityTLSConfigDialsPoP(t *testing.T) {
	id := testIdentity(t)
	if _, err := id.TLSConfig(""); err == nil {
		t.Error("TLS config without a server name")
	}
	tc, err := id.TLSConfig("pop.demo.test")
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "pop.demo.test" || tc.RootCAs != id.Roots || len(tc.Certificates) != 1 || tc.MinVersion != tls.VersionTLS13 {
		t.Errorf("TLS config = %+v", tc)
	}
}
