package pop

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// The client's quick recoveries, through a proxy that can make the path of
// the connections it carries die silently (a NAT that forgot them, an uplink
// gone) while new connections pass.

// TestReconnectKeepsLiveStreams: Reconnect on a path that still works moves
// new flows to a new connection while a stream open on the old one goes on;
// the old connection closes when that stream ends.
func TestReconnectKeepsLiveStreams(t *testing.T) {
	l, px, target := recoverLab(t)
	c := open(t, l, target)
	l.client.Reconnect("test")
	eventually(t, "a second connection", func() bool { return px.accepted.Load() == 2 })
	if err := roundTrip(l.client, target, 1024, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(l7.CheckTimeout + 500*time.Millisecond) // the old connection's check has passed
	if err := exchange(c, 1<<20, 3); err != nil {
		t.Fatalf("stream on the replaced connection: %v", err)
	}
	if n := px.live.Load(); n != 2 {
		t.Errorf("%d connections live with a stream on the old one, want 2", n)
	}
	c.Close()
	eventually(t, "the old connection closed", func() bool { return px.live.Load() == 1 })
}

// TestReconnectLeavesDeadPath: Reconnect after the path died moves new flows
// at once, and the old connection's stream ends within CheckTimeout.
func TestReconnectLeavesDeadPath(t *testing.T) {
	l, px, target := recoverLab(t)
	c := open(t, l, target)
	px.freeze()
	start := time.Now()
	l.client.Reconnect("test")
	eventually(t, "a flow on a new connection", func() bool { return roundTrip(l.client, target, 1024, 2) == nil })
	if took := time.Since(start); took > time.Second {
		t.Errorf("new flows work %v after Reconnect, want at once", took)
	}
	c.SetReadDeadline(time.Now().Add(l7.CheckTimeout + 3*time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read on the dead connection's stream: %v, want its end", err)
	}
	if took := time.Since(start); took > l7.CheckTimeout+time.Second {
		t.Errorf("the dead connection's stream ended %v after Reconnect, want about CheckTimeout", took)
	}
}

// recoverLab is a lab whose client reaches the PoP through a proxy.
func recoverLab(t *testing.T) (*lab, *proxy, l7.Target) {
	l := newLab(t, labOptions{noClient: true})
	px := newProxy(t, l.popAddr)
	l.client = l7.NewClient(l7.ClientConfig{
		Addr: px.ln.Addr().String(), TLS: l.ca.peerTLS(t, "device-1"), Log: l.log,
		RetryMin: l.retryMin, RetryMax: l.retryMax,
	})
	l.client.Start()
	t.Cleanup(func() { l.client.Close() })
	l.waitReady()
	port := startServer(t, echo)
	return l, px, l7.Target{Host: "echo.corp.test", Port: port, AppID: appEcho}
}

// proxy relays TCP connections to target. freeze makes the connections it
// carries drop every byte from then on, both ways, without closing them.
type proxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	live     atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[*proxied]struct{}
}

type proxied struct {
	a, b   net.Conn
	frozen atomic.Bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[*proxied]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for pc := range p.conns {
			pc.a.Close()
			pc.b.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		pc := &proxied{a: a, b: b}
		p.mu.Lock()
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.accepted.Add(1)
		p.live.Add(1)
		var both sync.WaitGroup
		both.Go(func() { pc.copy(b, a) })
		both.Go(func() { pc.copy(a, b) })
		p.wg.Go(func() {
			both.Wait()
			p.mu.Lock()
			delete(p.conns, pc)
			p.mu.Unlock()
			p.live.Add(-1)
		})
	}
}

// copy relays from src to dst until either fails, then closes both.
func (pc *proxied) copy(dst, src net.Conn) {
	defer pc.a.Close()
	defer pc.b.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pc.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		pc.frozen.Store(true)
	}
}

// TestPublisherReconnectDropsDeadConnection: when a publisher dials in
// again, its previous connection, whose path died silently, is dropped within
// CheckTimeout, not at its keepalive; new streams use the new one meanwhile.
func TestPublisherReconnectDropsDeadConnection(t *testing.T) {
	l := newLab(t, labOptions{noClient: true}) // pub-1 connected directly
	px := newProxy(t, l.popAddr)
	direct := l.popAddr
	l.popAddr = px.ln.Addr().String()
	l.startPublisher("pub-1", 0) // pub-1 again, through the proxy
	l.popAddr = direct
	eventually(t, "two connections of pub-1", func() bool { return pubConns(l, "pub-1") == 2 })
	px.freeze()

	l.startPublisher("pub-1", 0) // and again, directly
	eventually(t, "three connections of pub-1", func() bool { return pubConns(l, "pub-1") == 3 })
	start := time.Now()
	eventually(t, "the dead connection dropped", func() bool { return pubConns(l, "pub-1") == 2 })
	if took := time.Since(start); took > l7.CheckTimeout+time.Second {
		t.Errorf("dead publisher connection dropped %v after the new one came, want about CheckTimeout", took)
	}
}

func pubConns(l *lab, name string) int {
	l.pop.mu.Lock()
	defer l.pop.mu.Unlock()
	return len(l.pop.pubs[name])
}
