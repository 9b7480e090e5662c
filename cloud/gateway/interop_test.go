package gateway

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ztagent/ztagent/tunnel/l3e"
	"github.com/ztagent/ztagent/tunnel/l3e/l3etest"
)

// writePEMs writes the tenant CA and a device certificate and key for openssl.
func (l *lab) writePEMs(t *testing.T, id string) (caFile, certFile, keyFile string) {
	dir := t.TempDir()
	cert := l.deviceCert(id, "alice@demo.test")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "dev.pem"), filepath.Join(dir, "dev.key")
	for path, data := range map[string][]byte{
		caFile:   l.ca.CertPEM(),
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// A foreign DTLS 1.2 client (OpenSSL) completes a handshake with the gateway
// with a device certificate, gets its template, and is refused without one.
func TestOpenSSLClient(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed (apt-get install openssl): the foreign-peer check needs it")
	}
	l := newLab(t, t.TempDir(), "127.0.0.1:0")
	defer l.stop()
	ca, cert, key := l.writePEMs(t, "openssl-laptop")
	args := []string{"s_client", "-dtls1_2", "-connect", l.gw.Addr().String(), "-CAfile", ca,
		"-servername", "gateway.test", "-verify_return_error", "-ign_eof"}

	out := runSClient(t, append(args, "-cert", cert, "-key", key), func() bool { return l.gw.Stats().Associations == 1 })
	if !strings.Contains(out, "Verify return code: 0 (ok)") || !strings.Contains(out, "GCM") {
		t.Fatalf("openssl s_client:\n%s", out)
	}
	// The template's JSON came through as application data.
	if !strings.Contains(out, `"address":"10.77.0.2/24"`) {
		t.Fatalf("no template in the s_client output:\n%s", out)
	}

	before := l.gw.Stats().Drops["handshake"]
	out = runSClient(t, args, func() bool { return l.gw.Stats().Drops["handshake"] > before })
	if l.gw.Stats().Handshakes != 1 || strings.Contains(out, `"address"`) {
		t.Fatalf("admitted without a certificate:\n%s", out)
	}
}

// runSClient runs openssl until done() is true (or 10 s pass), then ends it
// and returns what it printed.
func runSClient(t *testing.T, args []string, done func() bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out l3etest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !done() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let it print what arrived
	stdin.Close()
	cmd.Process.Kill()
	cmd.Wait()
	if !done() {
		t.Fatalf("openssl %s: condition not met:\n%s", strings.Join(args, " "), out.String())
	}
	return out.String()
}

// A relay between device and gateway replays every datagram the device sends
// and adds a truncated copy: the gateway counts both, delivers each packet
// once, and the association stays up.
func TestReplayedAndTruncatedRecords(t *testing.T) {
	l := newLab(t, t.TempDir(), "127.0.0.1:0")
	defer l.stop()
	relay := newRelay(t, l.gw.Addr().String())
	defer relay.close()
	d := l.device("laptop1", func(c *l3e.ClientConfig) { c.Gateway = relay.addr() })
	me := d.template(t).Address.Addr()
	for range 3 {
		pkt := l3etest.Packet(netip.AddrPortFrom(me, 3389), helpdesk, l3e.ProtoUDP, []byte("hi"))
		pkt[9] = l3e.ProtoTCP
		d.tun.Outbound <- pkt
		expect(t, l.corp.Inbound, pkt)
	}
	expectNone(t, l.corp.Inbound)
	eventually(t, "gateway stats", func() any { return l.gw.Stats() }, func() bool {
		s := l.gw.Stats()
		return s.Replayed >= 3 && s.Truncated >= 3 && s.FromDevices == 3 && s.Associations == 1
	})
}

// relay forwards UDP between one client and the gateway, sending every
// datagram from the client twice and then a copy cut short by one byte.
type relay struct {
	pc   net.PacketConn
	wg   sync.WaitGroup
	once sync.Once
}

func newRelay(t *testing.T, gateway string) *relay {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.Dial("udp", gateway)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{pc: pc}
	var client atomicAddr
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		defer up.Close()
		buf := make([]byte, 1<<16)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			client.set(from)
			up.Write(buf[:n])
			if buf[0] == 23 { // application data: replay it, then send it cut short
				up.Write(buf[:n])
				up.Write(buf[:n-1])
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if to := client.get(); to != nil {
				pc.WriteTo(buf[:n], to)
			}
		}
	}()
	return r
}

func (r *relay) addr() string { return r.pc.LocalAddr().String() }

func (r *relay) close() {
	r.once.Do(func() { r.pc.Close() })
	r.wg.Wait()
}

type atomicAddr struct {
	mu sync.Mutex
	a  net.Addr
}

func (a *atomicAddr) set(x net.Addr) { a.mu.Lock(); a.a = x; a.mu.Unlock() }
func (a *atomicAddr) get() net.Addr  { a.mu.Lock(); defer a.mu.Unlock(); return a.a }
