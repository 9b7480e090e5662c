package tenant

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

func TestCAPersistsAndIsShared(t *testing.T) {
	dir := t.TempDir()
	// Several processes (tenant, PoP) may create the CA at the same moment: all
	// must end up with the same one.
	cas := make([]*CA, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range cas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cas[i], errs[i] = LoadOrCreateCA(dir)
		}()
	}
	wg.Wait()
	for i := range cas {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !cas[i].Certificate().Equal(cas[0].Certificate()) {
			t.Fatal("concurrent starts created different CAs")
		}
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil || !again.Certificate().Equal(cas[0].Certificate()) {
		t.Fatalf("reload gave another CA: %v", err)
	}
	if runtime.GOOS != "windows" {
		st, _ := os.Stat(filepath.Join(dir, caKeyFile))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("CA key mode %v, want 0600", st.Mode().Perm())
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, caCertFile))
	if string(pub) != string(again.CertPEM()) || strings.Contains(string(pub), "PRIVATE") {
		t.Error("ca.pem is not exactly the public certificate")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("CA dir holds %d entries, want 2 (no temporary files)", len(ents))
	}
}

func TestCACorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, caKeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateCA(dir)
	if err == nil || !strings.Contains(err.Error(), "restore it from backup") {
		t.Errorf("corrupt CA: %v", err)
	}
}

func TestIssueServerAndPeerIdentity(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServer([]string{"pop.demo.test", "10.10.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pop.demo.test", "10.10.0.1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name}); err != nil {
			t.Errorf("server cert for %s: %v", name, err)
		}
	}
	if _, err := tenantapi.PeerIdentity(cert.Leaf); err == nil {
		t.Error("a server certificate carries no peer identity")
	}
	if _, err := ca.IssueServer(nil); err == nil {
		t.Error("server certificate without names")
	}
	key, csrPEM, _ := tenantapi.NewKey("x")
	csrDER, _ := decodeCSRPEM(csrPEM)
	for _, want := range []tenantapi.Peer{
		{Tenant: "demo", Kind: tenantapi.KindPublisher, Publisher: "pub1"},
		{Tenant: "demo", Kind: tenantapi.KindDevice, Device: "abc123", User: "a+b@demo.test"},
	} {
		var der []byte
		if want.Kind == tenantapi.KindPublisher {
			der, err = ca.SignPublisher(csrDER, tenantapi.PublisherIdentity{Tenant: want.Tenant, Name: want.Publisher})
		} else {
			der, err = ca.SignDevice(csrDER, tenantapi.DeviceIdentity{Tenant: want.Tenant, DeviceID: want.Device, User: want.User})
		}
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		if got, err := tenantapi.PeerIdentity(leaf); err != nil || got != want {
			t.Errorf("PeerIdentity = %+v, %v; want %+v", got, err, want)
		}
		if !key.PublicKey.Equal(leaf.PublicKey) {
			t.Error("certificate is not for the CSR's key")
		}
	}
}

func TestParseCSRRejects(t *testing.T) {
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der384, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k384)
	_, goodPEM, _ := tenantapi.NewKey("x")
	good, _ := decodeCSRPEM(goodPEM)
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 0xff
	for name, der := range map[string][]byte{"p384": der384, "tampered": tampered, "junk": []byte("junk")} {
		if _, err := ParseCSR(der); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
