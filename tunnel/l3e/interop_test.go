package l3e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v2"

	"github.com/ztagent/ztagent/tunnel/l3e/l3etest"
	"github.com/ztagent/ztagent/tunnel/l3e/record"
)

// testPKI is a CA with one server and one client certificate.
type testPKI struct {
	pool              *x509.CertPool
	caPEM             []byte
	server, client    tls.Certificate
	serverPEM, keyPEM []byte
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{pool: x509.NewCertPool(), caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	p.pool.AddCert(ca)
	issue := func(serial int64, usage x509.ExtKeyUsage, dns []string) (tls.Certificate, []byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	}
	p.server, p.serverPEM, p.keyPEM = issue(2, x509.ExtKeyUsageServerAuth, []string{"gateway.test"})
	p.client, _, _ = issue(3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

// The client's DTLS end completes a handshake with OpenSSL's DTLS 1.2 server
// (which demands a client certificate) on an AES-GCM suite, and data passes.
func TestOpenSSLServer(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed (apt-get install openssl): the foreign-peer check needs it")
	}
	p := newTestPKI(t)
	dir := t.TempDir()
	files := map[string][]byte{"ca.pem": p.caPEM, "srv.pem": p.serverPEM, "srv.key": p.keyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := freeUDPPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:"+port,
		"-cert", filepath.Join(dir, "srv.pem"), "-key", filepath.Join(dir, "srv.key"),
		"-CAfile", filepath.Join(dir, "ca.pem"), "-Verify", "1", "-verify_return_error")
	var out l3etest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe() // s_server stops at the end of its input
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	for !strings.Contains(out.String(), "ACCEPT") {
		if ctx.Err() != nil {
			t.Fatalf("openssl s_server did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	defer hcancel()
	raw, err := net.Dial("udp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dtls.ClientWithContext(hctx, raw, ClientDTLSConfig(p.client, p.pool, "gateway.test"))
	if err != nil {
		raw.Close()
		t.Fatalf("handshake with openssl s_server: %v\n%s", err, out.String())
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello from pion\n")); err != nil {
		t.Fatal(err)
	}
	// The records of the data path are ours: OpenSSL reads them too.
	keys, err := record.KeysOf(conn)
	if err != nil {
		t.Fatal(err)
	}
	seal, err := keys.Sealer()
	if err != nil {
		t.Fatal(err)
	}
	msg := "hello from ztagent's record layer\n"
	rec, err := seal.SealCopy([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write(rec); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "hello from pion") || !strings.Contains(out.String(), msg) {
		if ctx.Err() != nil {
			t.Fatalf("openssl s_server did not print the data:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := out.String(); !strings.Contains(s, "GCM") {
		t.Fatalf("no AES-GCM suite in:\n%s", s)
	}
}

func freeUDPPort(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	return port
}
