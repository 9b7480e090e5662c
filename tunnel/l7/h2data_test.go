package l7

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// openOnPeer opens a stream on cc to the fake peer and answers it with 200.
func openOnPeer(t *testing.T, cc *ClientConn, p *fakePeer) *Stream {
	t.Helper()
	type result struct {
		s   *Stream
		err error
	}
	res := make(chan result, 1)
	go func() {
		s, err := cc.Connect(context.Background(), echoTarget)
		res <- result{s, err}
	}()
	id := p.next(http2.FrameHeaders).Header().StreamID
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.s
}

// TestDataPadded: DATA frames with padding, empty or not, deliver exactly
// their data, read straight from the connection.
func TestDataPadded(t *testing.T) {
	cc, p := newFakePeer(t, keepalive{idle: time.Hour, timeout: time.Hour})
	s := openOnPeer(t, cc, p)
	defer s.Close()
	big := make([]byte, 300<<10) // more than one chunk
	rand.Read(big)
	want := append([]byte("ab"), big...)
	id := s.id
	for _, f := range []struct {
		data []byte
		pad  []byte
		end  bool
	}{
		{[]byte("a"), make([]byte, 7), false},
		{nil, make([]byte, 3), false},
		{[]byte("b"), nil, false},
		{big[:100<<10], make([]byte, 255), false},
		{big[100<<10:], nil, true},
	} {
		var err error
		if f.pad == nil {
			err = p.fr.WriteData(id, f.end, f.data)
		} else {
			err = p.fr.WriteDataPadded(id, f.end, f.data, f.pad)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(want))
	}
}

// TestDataBadPadding: a pad length beyond the frame is a connection error.
func TestDataBadPadding(t *testing.T) {
	cc, p := newFakePeer(t, keepalive{idle: time.Hour, timeout: time.Hour})
	s := openOnPeer(t, cc, p)
	defer s.Close()
	id := s.id
	// Length 2, DATA, PADDED, the stream; then a pad length of 5 and one byte.
	frame := []byte{0, 0, 2, byte(http2.FrameData), byte(http2.FlagDataPadded),
		byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id), 5, 'x'}
	if _, err := p.c.Write(frame); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection survived a bad pad length")
	}
	if _, err := io.ReadAll(s); err == nil {
		t.Error("the stream ended cleanly on a dead connection")
	}
}

// TestWriteBufferedTo: a stream's data written out from its own chunks is the
// data sent, then io.EOF; the window is given back, so more than a stream
// window passes.
func TestWriteBufferedTo(t *testing.T) {
	cc := h2Server(t, xnetServer(), echoHandler)
	s, err := cc.Connect(context.Background(), echoTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := make([]byte, streamWindow+(3<<20))
	rand.Read(want)
	go func() {
		s.Write(want)
		s.CloseWrite()
	}()
	var got bytes.Buffer
	for {
		_, rerr, werr := s.WriteBufferedTo(&got)
		if werr != nil {
			t.Fatal(werr)
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				t.Fatal(rerr)
			}
			break
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d (or different bytes)", got.Len(), len(want))
	}
	if s.rbuf.bufs != nil {
		t.Error("a drained stream still holds chunks")
	}
}

// countingWrites counts the writes that reach a connection.
type countingWrites struct {
	net.Conn
	n atomic.Int64
}

func (c *countingWrites) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// TestTLSConnBatches: a write of many TLS records reaches the connection in
// a few writes and arrives intact; a small one goes through at once.
func TestTLSConnBatches(t *testing.T) {
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	cert := selfSigned(t)
	raw := &countingWrites{Conn: a}
	client := newTLSConn(raw, func(c net.Conn) *tls.Conn {
		return tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	})
	server := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}})
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	want := make([]byte, 1<<20)
	rand.Read(want)
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, len(want)+1)
		n, _ := io.ReadFull(server, buf[:len(want)+1])
		got <- buf[:n]
	}()
	before := raw.n.Load()
	if _, err := client.Write(want[:100]); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(want[100:]); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	writes := raw.n.Load() - before
	if g := <-got; !bytes.Equal(g, append(want[:len(want):len(want)], 1)) {
		t.Fatalf("received %d bytes, want %d (or different bytes)", len(g), len(want)+1)
	}
	// 1 MiB is 64 records: 4 batches of 16, plus the two small writes.
	if max := int64(len(want)/(16*maxPlaintext) + 3); writes > max {
		t.Errorf("%d writes reached the connection, want at most %d", writes, max)
	}
	if client.w.buf != nil {
		t.Error("an idle connection holds a batch buffer")
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
