package pop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// TestShutdownDrains restarts the PoP the graceful way, as an upgrade would:
// the old PoP sends GOAWAY and the client opens its new flows on a new
// connection (to the new PoP) at once, while a stream open on the old one
// carries data until it ends; then the old PoP's Shutdown returns, well before
// its drain timeout.
func TestShutdownDrains(t *testing.T) {
	l := newLab(t, labOptions{defaultRetry: true})
	port := startServer(t, echo)
	target := l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho}

	// Both PoPs take their connections from one listening socket, as an old
	// and a new process share a port while one hands over to the other.
	l.stopPoP()
	ln, err := net.Listen("tcp", l.popAddr)
	if err != nil {
		t.Fatal(err)
	}
	h := newHandoff(ln)
	t.Cleanup(h.close)
	l.startPoP(h.next())
	old, oldDone := l.pop, l.popDone
	l.waitReady()
	c := open(t, l, target)
	if err := exchange(c, 1<<16, 1); err != nil {
		t.Fatal(err)
	}

	l.startPoP(h.next()) // new connections go to the new PoP from now on
	l.startPublisher("pub-1", 0)
	eventually(t, "publisher on the new PoP", func() bool { return l.pop.pick(appEcho, []string{"pub-1"}) != nil })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	shut := make(chan error, 1)
	go func() { shut <- old.Shutdown(ctx) }()
	eventually(t, "a new flow through the new PoP", func() bool { return roundTrip(l.client, target, 1024, 2) == nil })
	t.Logf("new flows work %v after the old PoP began its shutdown", time.Since(start))
	if took := time.Since(start); took > time.Second {
		t.Errorf("new flows worked only %v after GOAWAY, want at once", took)
	}

	// The stream on the old PoP still carries data both ways, then ends.
	if err := exchange(c, 1<<20, 3); err != nil {
		t.Fatalf("stream across the shutdown: %v", err)
	}
	if err := echoThrough(c, 1<<10, 4); err != nil {
		t.Fatalf("stream across the shutdown: %v", err)
	}
	c.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown still waiting 5 s after the last stream ended")
	}
	if err := <-oldDone; !errors.Is(err, ErrClosed) {
		t.Errorf("old PoP's Serve: %v, want ErrClosed", err)
	}
	if time.Since(start) > 8*time.Second {
		t.Errorf("Shutdown took %v: it waited for its timeout, not for the stream", time.Since(start))
	}
}

// TestShutdownTimeout: a stream that does not end within the drain timeout is
// cut when it expires.
func TestShutdownTimeout(t *testing.T) {
	l := newLab(t, labOptions{})
	port := startServer(t, echo)
	c := open(t, l, l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := l.pop.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("Shutdown took %v, want about its 300 ms timeout", took)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read on a stream cut by the shutdown: %v, want the stream's end", err)
	}
}

// exchange sends size bytes to an echo server and reads them back, leaving
// the stream open.
func exchange(c net.Conn, size int, fill byte) error {
	data := bytes.Repeat([]byte{fill}, size)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	got := make([]byte, size)
	_, err := io.ReadFull(c, got)
	if err := errors.Join(err, <-werr); err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}

// handoff hands the connections one listening socket accepts to the last
// listener next returned.
type handoff struct {
	ln   net.Listener
	mu   sync.Mutex
	cur  *chanListener
	done chan struct{}
}

func newHandoff(ln net.Listener) *handoff {
	h := &handoff{ln: ln, done: make(chan struct{})}
	go h.run()
	return h
}

func (h *handoff) run() {
	defer close(h.done)
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		cl := h.cur
		h.mu.Unlock()
		select {
		case cl.c <- c:
		case <-cl.closed:
			c.Close()
		}
	}
}

func (h *handoff) next() net.Listener {
	cl := &chanListener{c: make(chan net.Conn), closed: make(chan struct{}), addr: h.ln.Addr()}
	h.mu.Lock()
	h.cur = cl
	h.mu.Unlock()
	return cl
}

func (h *handoff) close() {
	h.ln.Close()
	<-h.done
}

type chanListener struct {
	c      chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
