//go:build linux

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// TestOnPrem: the tenant names an HTTPS beacon on the corporate network
// (10.20.0.10:8443) by its certificate's SHA-256. With the client off the
// corporate network the beacon is out of reach and the agent steers; once
// the client is also plugged into the corporate network (lab.sh
// corp-uplink) it must switch to on premises within 5 s — private names go
// to the OS's resolvers and the app at 10.20.0.10 is reached direct — and
// back within 5 s of being unplugged, when flows are steered again.
func TestOnPrem(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	certFile, keyFile, fp := beaconCert(t, dir)
	demo, err := os.ReadFile(filepath.Join("..", "testdata", "tenants", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const profile = "  - name: engineering\n    groups: [engineering]\n"
	if !strings.Contains(string(demo), profile) {
		t.Fatal("demo.yaml has no engineering profile to add the detection to")
	}
	tenant := strings.Replace(string(demo), profile, profile+
		"    client:\n      onprem_detection:\n        beacon: {url: \"https://10.20.0.10:8443/\", sha256: \""+fp+"\"}\n", 1)
	tenantFile := filepath.Join(dir, "onprem.yaml")
	if err := os.WriteFile(tenantFile, []byte(tenant), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLabEnv(t, map[string]string{"ZT_TENANT": tenantFile})
	l.background("beacon", "corp", l.bin("labweb"), "--name", "beacon", "--tls-listen", "10.20.0.10:8443",
		"--tls-cert", certFile, "--tls-key", keyFile)
	l.script("agent-start")
	t.Cleanup(func() { l.script("agent-stop") })

	// The first check runs at start; out of reach, the beacon times out.
	poll(t, l, "the first on-premises check", 10*time.Second, func() bool { return !network(t, l).OnPremChecked.IsZero() })
	st := network(t, l)
	if st.OnPrem || !strings.Contains(st.OnPremReason, "https://10.20.0.10:8443/") {
		t.Fatalf("before the corporate network: %+v", st)
	}
	wantFlow(t, l)

	start := time.Now()
	l.script("corp-uplink")
	took := poll(t, l, "on premises", 10*time.Second, func() bool { return network(t, l).OnPrem })
	t.Logf("on premises %v after joining the corporate network: %s", ms(took), network(t, l).OnPremReason)
	if took > 5*time.Second {
		t.Errorf("on premises after %v, want ≤ 5 s", ms(took))
	}
	// The app by address is reached direct, from the client's corporate
	// address, not through a publisher.
	page := l.must("client", "curl", "-sS", "--max-time", "5", "http://10.20.0.10/")
	wantPage(t, page, "hello from corp web", "remote=10.40.0.2:")
	// A private name is no longer answered with a stub: the OS's resolver
	// (the lab's public one, which knows no corp names) answers.
	if out, _ := l.run("client", "dig", "+short", "+time=2", "+tries=1", "web.corp.test"); strings.Contains(out, "100.") {
		t.Errorf("on premises web.corp.test still resolves to a stub: %s", out)
	}

	l.script("corp-uplink-down")
	took = poll(t, l, "off premises", 10*time.Second, func() bool { return !network(t, l).OnPrem })
	t.Logf("off premises %v after leaving the corporate network: %s (%v since joining)", ms(took), network(t, l).OnPremReason, ms(time.Since(start)))
	if took > 5*time.Second {
		t.Errorf("off premises after %v, want ≤ 5 s", ms(took))
	}
	poll(t, l, "a steered flow off premises", 10*time.Second, func() bool { return flowWorks(l) })
	page = l.must("client", "curl", "-sS", "--max-time", "5", "http://10.20.0.10/")
	if strings.Contains(page, "remote=10.40.0.2:") {
		t.Errorf("off premises the app by address is still reached direct: %s", page)
	}
}

// network returns the agent's status.network.
func network(t *testing.T, l *lab) ctlapi.NetworkStatus {
	t.Helper()
	out, code := l.run("client", l.bin("ztdiag"), "--socket", l.sock(), "status", "--json")
	if code != 0 {
		t.Fatalf("status: %s", out)
	}
	var st ctlapi.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	return st.Network
}

// beaconCert writes a self-signed certificate and its key to dir and
// returns their files and the certificate's SHA-256, as the tenant pins it.
func beaconCert(t *testing.T, dir string) (certFile, keyFile, sha string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "beacon.corp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"beacon.corp.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "beacon.pem"), filepath.Join(dir, "beacon.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return certFile, keyFile, hex.EncodeToString(sum[:])
}
