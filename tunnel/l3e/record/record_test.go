package record

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v2"
	"github.com/pion/dtls/v2/pkg/crypto/selfsign"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tapConn hands a copy of every datagram it reads to taps.
type tapConn struct {
	net.Conn
	taps chan []byte
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		select {
		case c.taps <- append([]byte{}, p[:n]...):
		default:
		}
	}
	return n, err
}

// pionPair is a pion client and server over loopback UDP; the client's
// socket is tapped.
type pionPair struct {
	client, server *dtls.Conn
	clientRaw      net.Conn // the client's socket, to write records of ours
	serverRaw      net.Conn
	taps           chan []byte
}

func newPionPair(t *testing.T, suite dtls.CipherSuiteID) *pionPair {
	t.Helper()
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.DialUDP("udp", nil, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	sa, err := net.DialUDP("udp", a.LocalAddr().(*net.UDPAddr), b.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	conf := &dtls.Config{Certificates: []tls.Certificate{cert}, CipherSuites: []dtls.CipherSuiteID{suite},
		InsecureSkipVerify: true, ExtendedMasterSecret: dtls.RequireExtendedMasterSecret}
	p := &pionPair{clientRaw: b, serverRaw: sa, taps: make(chan []byte, 64)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var err error
		p.server, err = dtls.ServerWithContext(ctx, sa, conf)
		done <- err
	}()
	p.client, err = dtls.ClientWithContext(ctx, &tapConn{Conn: b, taps: p.taps}, conf)
	if err2 := <-done; err != nil || err2 != nil {
		t.Fatalf("handshake: %v / %v", err, err2)
	}
	t.Cleanup(func() {
		// A zero deadline ends the timer goroutine pion keeps per deadline.
		p.client.SetReadDeadline(time.Time{})
		p.server.SetReadDeadline(time.Time{})
		p.client.Close()
		p.server.Close()
	})
	return p
}

func pairKeys(t *testing.T, p *pionPair) (client, server Keys) {
	t.Helper()
	client, err := KeysOf(p.client)
	if err != nil {
		t.Fatal(err)
	}
	server, err = KeysOf(p.server)
	if err != nil {
		t.Fatal(err)
	}
	if !client.IsClient || server.IsClient || !bytes.Equal(client.WriteKey, server.ReadKey) ||
		!bytes.Equal(client.ReadIV, server.WriteIV) || client.Epoch != 1 {
		t.Fatalf("keys do not pair: client %v, server %v", client, server)
	}
	return client, server
}

// sealed returns msg sealed by s in a fresh buffer.
func sealed(t testing.TB, s *Sealer, msg []byte) []byte {
	rec, err := s.SealCopy(msg)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// The records are standard: what our layer seals a pion Conn reads, and
// what a pion Conn writes our layer opens, on both AES-GCM key sizes.
func TestPionInterop(t *testing.T) {
	for _, suite := range []dtls.CipherSuiteID{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384} {
		t.Run(suite.String(), func(t *testing.T) {
			p := newPionPair(t, suite)
			ck, sk := pairKeys(t, p)
			if ck.Suite != suite {
				t.Fatalf("suite %v, want %v", ck.Suite, suite)
			}
			// Ours → pion.
			cs, err := ck.Sealer()
			if err != nil {
				t.Fatal(err)
			}
			for i, msg := range []string{"first record of ours", "second"} {
				if _, err := p.clientRaw.Write(sealed(t, cs, []byte(msg))); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 100)
				p.server.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := p.server.Read(buf)
				if err != nil || string(buf[:n]) != msg {
					t.Fatalf("record %d: pion read %q, %v; want %q", i, buf[:n], err, msg)
				}
			}
			// pion → ours: the tapped copy of what pion wrote.
			drain(p.taps)
			if _, err := p.server.Write([]byte("from pion")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			p.client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := p.client.Read(buf); err != nil {
				t.Fatal(err)
			}
			co, err := ck.Opener()
			if err != nil {
				t.Fatal(err)
			}
			rec := <-p.taps
			if Ours(rec) {
				t.Fatal("a pion record taken for ours")
			}
			if got, err := co.Open(rec); err != nil || string(got) != "from pion" {
				t.Fatalf("opened %q, %v", got, err)
			}
			// Ours → ours, server to client.
			ss, err := sk.Sealer()
			if err != nil {
				t.Fatal(err)
			}
			rec = sealed(t, ss, []byte("ours both ends"))
			if !Ours(rec) {
				t.Fatal("our record not recognised as ours")
			}
			if got, err := co.Open(rec); err != nil || string(got) != "ours both ends" {
				t.Fatalf("opened %q, %v", got, err)
			}
		})
	}
}

func drain(c chan []byte) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
