package pop

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ztagent/ztagent/tunnel/l7"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type closeWriter interface {
	net.Conn
	CloseWrite() error
}

func open(t *testing.T, l *lab, target l7.Target) closeWriter {
	t.Helper()
	c, err := l.client.Open(context.Background(), target)
	if err != nil {
		t.Fatalf("Open(%v): %v", target, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(closeWriter)
}

// TestLargeTransfer sends 32 MiB through client → PoP → publisher → echo and back,
// reading while writing, and checks every byte.
func TestLargeTransfer(t *testing.T) {
	l := newLab(t, labOptions{})
	port := startServer(t, echo)
	c := open(t, l, l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho})

	const size = 32 << 20
	data := make([]byte, size)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("read after %d bytes: %v", n, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), sha256Sum(data)) {
		t.Fatalf("echoed %d bytes with a different digest, want %d identical bytes", n, size)
	}
	st := l.client.Status()
	if st.BytesOut < size || st.BytesIn < size || st.Streams != 1 {
		t.Errorf("status = %+v, want ≥%d bytes each way and 1 stream", st, size)
	}
	c.Close()
	if got := l.client.Status().Streams; got != 0 {
		t.Errorf("streams after close = %d, want 0", got)
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestHalfClose is an HTTP/1.0-style exchange: the server answers only after the
// client's FIN, which must reach it through both hops while the downstream direction
// stays open.
func TestHalfClose(t *testing.T) {
	l := newLab(t, labOptions{})
	port := startServer(t, func(c *net.TCPConn) {
		req, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes: %s", len(req), req)
	})
	c := open(t, l, l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho})
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := "got 18 bytes: GET / HTTP/1.0\r\n\r\n"; string(resp) != want {
		t.Fatalf("response %q, want %q", resp, want)
	}
}

// TestTargetHalfCloses is the other way round: the target sends its answer and
// its FIN first, then reads on. The client must read the answer to its end and
// keep writing through both hops, and the target must receive every byte.
func TestTargetHalfCloses(t *testing.T) {
	l := newLab(t, labOptions{})
	const size = 4 << 20
	got := make(chan []byte, 1)
	port := startServer(t, func(c *net.TCPConn) {
		io.WriteString(c, "hello")
		if err := c.CloseWrite(); err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	})
	c := open(t, l, l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho})
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "hello" {
		t.Fatalf("read %q, %v; want hello and the end", resp, err)
	}
	data := make([]byte, size)
	rand.Read(data)
	if _, err := c.Write(data); err != nil {
		t.Fatalf("write after the target's FIN: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("target received %d bytes, not the %d written", len(b), size)
	}
}

func TestRefused(t *testing.T) {
	l := newLab(t, labOptions{})
	echoPort := startServer(t, echo)
	tests := []struct {
		name   string
		target l7.Target
		status int
		reason string
	}{
		{"policy denies", l7.Target{Host: "echo.corp.test", Port: echoPort, AppID: appDenied}, http.StatusForbidden, "user is not allowed to reach app denied"},
		{"no publisher online", l7.Target{Host: "echo.corp.test", Port: echoPort, AppID: appOffline}, http.StatusServiceUnavailable, "no publisher of app offline is online"},
		{"connection refused", l7.Target{Host: "127.0.0.1", Port: closedPort(t), AppID: appEcho}, http.StatusBadGateway, "connection refused"},
		{"unknown host", l7.Target{Host: "nope.corp.test", Port: echoPort, AppID: appEcho}, http.StatusBadGateway, "resolve nope.corp.test: no such host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := l.client.Open(context.Background(), tt.target)
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded, want refusal")
			}
			var re *l7.RefusedError
			if !errors.As(err, &re) || !errors.Is(err, l7.ErrRefused) {
				t.Fatalf("Open: %v (%T), want *RefusedError", err, err)
			}
			if re.Status != tt.status || !bytes.Contains([]byte(re.Reason), []byte(tt.reason)) {
				t.Fatalf("refused %d %q, want %d containing %q", re.Status, re.Reason, tt.status, tt.reason)
			}
			if got := l.client.Status().Streams; got != 0 {
				t.Errorf("streams = %d after a refusal, want 0", got)
			}
		})
	}
}

// TestTimeouts: a resolver that never answers is a 504 from the publisher; a
// publisher that does not answer in time is a 504 from the PoP.
func TestTimeouts(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tests := []struct {
		name   string
		opts   labOptions
		reason string
	}{
		{"publisher", labOptions{pubDialTimeout: 100 * time.Millisecond}, "resolve echo.corp.test: timed out"},
		{"PoP", labOptions{popOpenTimeout: 100 * time.Millisecond, pubDialTimeout: time.Hour}, "publisher pub-1: publisher did not answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.dnsServer = silent.LocalAddr().String()
			l := newLab(t, tt.opts)
			_, err = l.client.Open(context.Background(), l7.Target{Host: "echo.corp.test", Port: 80, AppID: appEcho})
			var re *l7.RefusedError
			if !errors.As(err, &re) || re.Status != http.StatusGatewayTimeout || re.Reason != tt.reason {
				t.Fatalf("Open: %v, want 504 %q", err, tt.reason)
			}
		})
	}
}

// TestUnsupportedMethod: requests other than CONNECT and POST /dns-query get 405
// (DoH's GET form included) until later features claim them.
func TestUnsupportedMethod(t *testing.T) {
	l := newLab(t, labOptions{})
	req, err := http.NewRequest(http.MethodGet, "https://pop.test/dns-query", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := l.rawConn().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %s, want 405", resp.Status)
	}
}

// TestResets: a reset by the target reaches the client as an error, not as EOF;
// a client's Close reaches the target.
func TestResets(t *testing.T) {
	l := newLab(t, labOptions{})
	t.Run("target resets", func(t *testing.T) {
		port := startServer(t, func(c *net.TCPConn) {
			io.ReadFull(c, make([]byte, 5))
			c.SetLinger(0)
		})
		c := open(t, l, l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho})
		io.WriteString(c, "hello")
		if _, err := io.ReadAll(c); err == nil {
			t.Fatal("read ended cleanly after the target reset, want an error")
		}
	})
	t.Run("client closes", func(t *testing.T) {
		gone := make(chan error, 1)
		port := startServer(t, func(c *net.TCPConn) {
			c.Write([]byte("x"))
			_, err := c.Read(make([]byte, 1))
			gone <- err
		})
		c := open(t, l, l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho})
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := <-gone; err == nil {
			t.Fatal("target read data after the client closed")
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: %v, want net.ErrClosed", err)
		}
	})
}

// TestConcurrentStreams holds more streams open at once than HTTP/2's usual default
// limit (250) and echoes through all of them concurrently.
func TestConcurrentStreams(t *testing.T) {
	l := newLab(t, labOptions{})
	port := startServer(t, echo)
	const streams, size = 300, 16 << 10
	conns := make([]closeWriter, streams)
	for i := range conns {
		conns[i] = open(t, l, l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho})
	}
	if got := l.client.Status().Streams; got != streams {
		t.Errorf("Status().Streams = %d, want %d", got, streams)
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoThrough(c, size, byte(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func roundTrip(cl *l7.Client, target l7.Target, size int, fill byte) error {
	c, err := cl.Open(context.Background(), target)
	if err != nil {
		return err
	}
	defer c.Close()
	return echoThrough(c.(closeWriter), size, fill)
}

// echoThrough sends size bytes to an echo server, half-closes, and checks the echo.
func echoThrough(c closeWriter, size int, fill byte) error {
	data := bytes.Repeat([]byte{fill}, size)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err := errors.Join(err, <-werr); err != nil {
		return fmt.Errorf("stream %d: %w", fill, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("stream %d: echoed %d bytes, not the %d sent", fill, len(got), size)
	}
	return nil
}

// TestReconnect restarts the PoP: open streams fail, the client and the publisher
// reconnect on their own, and new streams work.
func TestReconnect(t *testing.T) {
	l := newLab(t, labOptions{})
	port := startServer(t, echo)
	target := l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho}
	c := open(t, l, target)

	l.stopPoP()
	if _, err := io.ReadAll(c); err == nil {
		t.Error("stream ended cleanly when the PoP went away, want an error")
	}
	eventually(t, "client notices", func() bool { return l.client.Status().State != l7.StateConnected })
	if _, err := l.client.Open(context.Background(), target); !errors.Is(err, l7.ErrNotConnected) {
		t.Fatalf("Open while down: %v, want ErrNotConnected", err)
	}
	if st := l.client.Status(); st.LastError == "" {
		t.Errorf("status %+v has no last error", st)
	}

	ln, err := net.Listen("tcp", l.popAddr)
	if err != nil {
		t.Fatal(err)
	}
	l.startPoP(ln)
	l.waitReady()
	if err := roundTrip(l.client, target, 1<<20, 7); err != nil {
		t.Fatal(err)
	}
}

// TestReconnectAfterOutage: with the backoff deployed, a PoP that was down long
// enough for the delays to grow is used again within a second of listening:
// refused attempts are repeated about every half second, not backed off.
func TestReconnectAfterOutage(t *testing.T) {
	l := newLab(t, labOptions{defaultRetry: true})
	took := outage(t, l, 3*time.Second)
	t.Logf("connected %v after the PoP listened again", took)
	if took > 3*time.Second {
		t.Fatalf("connected %v after the PoP listened again, want about a second at most", took)
	}
}

// outage stops the lab's PoP for d, starts it again on its address and returns
// how long after it listened the client was connected again.
func outage(t testing.TB, l *lab, d time.Duration) time.Duration {
	l.stopPoP()
	eventually(t, "client notices", func() bool { return l.client.Status().State != l7.StateConnected })
	time.Sleep(d)
	ln, err := net.Listen("tcp", l.popAddr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l.startPoP(ln)
	eventually(t, "client connected", func() bool { return l.client.Status().State == l7.StateConnected })
	return time.Since(start)
}

func TestNotConnected(t *testing.T) {
	ca := newTestCA(t)
	cl := l7.NewClient(l7.ClientConfig{Addr: fmt.Sprintf("127.0.0.1:%d", closedPort(t)), TLS: ca.peerTLS(t, "device-1")})
	cl.Start()
	defer cl.Close()
	if _, err := cl.Open(context.Background(), l7.Target{Host: "x", Port: 1}); !errors.Is(err, l7.ErrNotConnected) {
		t.Fatalf("Open: %v, want ErrNotConnected", err)
	}
	eventually(t, "a failed attempt", func() bool { return cl.Status().State == l7.StateDown })
	if st := cl.Status(); st.LastError == "" {
		t.Errorf("status %+v has no error", st)
	}
}

// TestWrongPeers: a device certificate is not a publisher, an untrusted certificate
// gets nowhere.
func TestWrongPeers(t *testing.T) {
	l := newLab(t, labOptions{})
	t.Run("untrusted client", func(t *testing.T) {
		other := newTestCA(t)
		tc := other.peerTLS(t, "device-1")
		tc.RootCAs = l.ca.pool
		cl := l7.NewClient(l7.ClientConfig{Addr: l.popAddr, TLS: tc, RetryMin: time.Hour})
		cl.Start()
		defer cl.Close()
		eventually(t, "a failed attempt", func() bool { return cl.Status().State == l7.StateDown })
	})
	t.Run("device as publisher", func(t *testing.T) {
		l.startPublisher("device-1", 0) // the PoP's Publisher hook rejects it
		eventually(t, "the PoP to reject the device", func() bool { return l.rejectedPubs.Load() > 0 })
		if l.pop.pick(appEcho, []string{"device-1"}) != nil {
			t.Fatal("a device registered as a publisher")
		}
	})
}

func TestCloseIdempotent(t *testing.T) {
	// Registered first, so it runs after every other cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t) })
	l := newLab(t, labOptions{})
	port := startServer(t, func(c *net.TCPConn) { io.Copy(io.Discard, c) })
	c := open(t, l, l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho})
	// Close everything under an open stream, twice.
	l.client.Close()
	l.client.Close()
	if _, err := c.Write([]byte("x")); err == nil {
		// The write may land in the pipe before the transport notices; a read must fail.
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("stream usable after Client.Close")
		}
	}
	if st := l.client.Status(); st.State != l7.StateClosed {
		t.Errorf("state = %q, want closed", st.State)
	}
	l.pop.Close()
	l.pop.Close()
	c.Close()
	if err := c.SetDeadline(time.Now()); !errors.Is(err, os.ErrNoDeadline) {
		t.Errorf("SetDeadline: %v, want os.ErrNoDeadline", err)
	}
}

// TestServerClosesFirst: a target that answers and closes while the client still has
// its write side open (HTTP/1.1 "Connection: close") delivers every byte, then EOF.
func TestServerClosesFirst(t *testing.T) {
	l := newLab(t, labOptions{})
	const size = 4 << 20
	port := startServer(t, func(c *net.TCPConn) {
		c.Write(bytes.Repeat([]byte{'z'}, size))
	})
	c := open(t, l, l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho})
	got, err := io.ReadAll(c)
	if err != nil || len(got) != size {
		t.Fatalf("read %d bytes, %v; want %d bytes and EOF", len(got), err, size)
	}
}

// TestRoundRobinFailover: streams of an app alternate between its online publishers;
// when one goes away the other takes every stream.
func TestRoundRobinFailover(t *testing.T) {
	l := newLab(t, labOptions{})
	stop2 := l.startPublisher("pub-2", 0)
	eventually(t, "pub-2 online", func() bool { return slices.Contains(l.pop.Online(), "pub-2") })
	if got := l.pop.Online(); !slices.Equal(got, []string{"pub-1", "pub-2"}) {
		t.Fatalf("Online() = %v", got)
	}
	allowed := []string{"pub-1", "pub-2"}
	var picked []string
	for range 4 {
		picked = append(picked, l.pop.pick(appHA, allowed).name)
	}
	if picked[0] == picked[1] || picked[0] != picked[2] || picked[1] != picked[3] {
		t.Errorf("picks %v do not alternate", picked)
	}

	stop2()
	eventually(t, "pub-2 offline", func() bool { return !slices.Contains(l.pop.Online(), "pub-2") })
	port := startServer(t, echo)
	for i := range 4 {
		if err := roundTrip(l.client, l7.Target{Host: "echo.corp.test", Port: port, AppID: appHA}, 1024, byte(i)); err != nil {
			t.Fatalf("with pub-2 gone: %v", err)
		}
	}
}
