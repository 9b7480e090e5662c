package pop

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/net/http2"

	"github.com/ztagent/ztagent/cloud/publisher"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// Apps of the test tenant.
const (
	appEcho    = "echo"    // served by pub-1
	appDenied  = "denied"  // policy refuses it
	appOffline = "offline" // served by a publisher that never connects
	appHA      = "ha"      // served by pub-1 and pub-2
	appTCPOnly = "tcponly" // served by pub-1, TCP only
)

// lab is a tenant on loopback: a PoP, a publisher, a client, a DNS server for the
// publisher and target servers, all torn down by t.Cleanup.
type lab struct {
	t       testing.TB
	ca      *testCA
	log     *zap.Logger
	popAddr string
	pop     *Server
	popDone chan error
	client  *l7.Client
	dnsAddr string

	openTimeout  time.Duration
	pubUDPIdle   time.Duration
	retryMin     time.Duration // of the client and publishers; 0 is l7's default
	retryMax     time.Duration
	pubDNS       map[string]string   // a publisher's resolver, when not dnsAddr
	extraApps    map[string][]string // more apps the policy allows, with their publishers
	rejectedPubs atomic.Int64        // publisher connections refused by the Publisher hook
}

type labOptions struct {
	popOpenTimeout time.Duration
	pubDialTimeout time.Duration
	dnsServer      string  // overrides the lab's DNS server
	ca             *testCA // the tenant CA to use instead of a new one
	noClient       bool    // start no client: l.client is nil
	defaultRetry   bool    // reconnect as deployed (l7's default backoff), not at once
	pubUDPIdle     time.Duration
}

func newLab(t testing.TB, opts labOptions) *lab {
	l := &lab{t: t, ca: opts.ca}
	if l.ca == nil {
		l.ca = newTestCA(t)
	}
	if tt, ok := t.(*testing.T); ok {
		l.log = zaptest.NewLogger(tt, zaptest.Level(zap.InfoLevel))
	} else {
		l.log = zap.NewNop()
	}
	l.dnsAddr = startDNS(t, map[string]string{"echo.corp.test.": "127.0.0.1"})
	if opts.dnsServer != "" {
		l.dnsAddr = opts.dnsServer
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.popAddr = ln.Addr().String()
	l.openTimeout, l.pubUDPIdle = opts.popOpenTimeout, opts.pubUDPIdle
	if !opts.defaultRetry {
		l.retryMin, l.retryMax = 5*time.Millisecond, 50*time.Millisecond
	}
	l.startPoP(ln)
	t.Cleanup(l.stopPoP)

	l.startPublisher("pub-1", opts.pubDialTimeout)
	if opts.noClient {
		eventually(t, "publisher online", func() bool { return l.pop.pick(appEcho, []string{"pub-1"}) != nil })
		return l
	}
	l.client = l7.NewClient(l7.ClientConfig{
		Addr: l.popAddr, TLS: l.ca.peerTLS(t, "device-1"), Log: l.log,
		RetryMin: l.retryMin, RetryMax: l.retryMax,
	})
	l.client.Start()
	t.Cleanup(func() { l.client.Close() })
	l.waitReady()
	return l
}

func (l *lab) authorize(peer *x509.Certificate, t l7.Target) ([]string, error) {
	if peer.Subject.CommonName != "device-1" {
		return nil, errors.New("unknown device")
	}
	if pubs, ok := l.extraApps[t.AppID]; ok {
		return pubs, nil
	}
	switch t.AppID {
	case appEcho:
		return []string{"pub-1"}, nil
	case appOffline:
		return []string{"pub-offline"}, nil
	case appHA:
		return []string{"pub-1", "pub-2"}, nil
	case appTCPOnly:
		if t.Proto != l7.ProtoTCP {
			return nil, errors.New(t.Proto.String() + " port is not part of app " + t.AppID)
		}
		return []string{"pub-1"}, nil
	}
	return nil, errors.New("user is not allowed to reach app " + t.AppID)
}

// authorizeDNS allows the apps that authorize allows, for names under corp.test.
func (l *lab) authorizeDNS(peer *x509.Certificate, appID, qname string) ([]string, error) {
	if !strings.HasSuffix(qname, ".corp.test.") {
		return nil, errors.New("name " + qname + " is not in app " + appID)
	}
	return l.authorize(peer, l7.Target{Host: qname, Port: 53, AppID: appID})
}

func (l *lab) startPoP(ln net.Listener) {
	l.pop = New(Config{
		TLS:           l.ca.serverTLS(l.t),
		Authorize:     l.authorize,
		AuthorizeDNS:  l.authorizeDNS,
		AuthorizeEcho: l.authorizeEcho,
		AuthorizeApp: func(peer *x509.Certificate, appID string) ([]string, error) {
			return l.authorize(peer, l7.Target{AppID: appID})
		},
		Publisher: func(peer *x509.Certificate) (string, bool) {
			if !strings.HasPrefix(peer.Subject.CommonName, "pub-") {
				l.rejectedPubs.Add(1)
				return "", false
			}
			return peer.Subject.CommonName, true
		},
		Log:         l.log,
		OpenTimeout: l.openTimeout,
	})
	pop, done := l.pop, make(chan error, 1)
	l.popDone = done
	go func() { done <- pop.Serve(ln) }()
}

func (l *lab) stopPoP() {
	l.pop.Close()
	if err := <-l.popDone; !errors.Is(err, ErrClosed) {
		l.t.Errorf("PoP.Serve: %v, want ErrClosed", err)
	}
}

// startPublisher runs a publisher until the returned stop (or the test's cleanup).
func (l *lab) startPublisher(name string, dialTimeout time.Duration) (stop func()) {
	resolver := l.dnsAddr
	if r, ok := l.pubDNS[name]; ok {
		resolver = r
	}
	pub := publisher.New(publisher.Config{
		Name: name, PoPAddr: l.popAddr, TLS: l.ca.peerTLS(l.t, name), Resolver: resolver,
		DialTimeout: dialTimeout, UDPIdle: l.pubUDPIdle, Log: l.log,
		RetryMin: l.retryMin, RetryMax: l.retryMax,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				l.t.Errorf("Publisher.Run: %v, want context.Canceled", err)
			}
		})
	}
	l.t.Cleanup(stop)
	return stop
}

// waitReady waits until the client is connected and the publisher registered.
func (l *lab) waitReady() {
	l.t.Helper()
	eventually(l.t, "client connected and publisher online", func() bool {
		if l.client.Status().State != l7.StateConnected {
			return false
		}
		return l.pop.pick(appEcho, []string{"pub-1"}) != nil
	})
}

// rawConn dials the PoP as device-1 with the client's TLS and x/net's HTTP/2
// transport and returns the connection, for requests the Client never sends; it
// is closed by the test's cleanup.
func (l *lab) rawConn() *http2.ClientConn {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := l7.DialTLS(ctx, nil, l.popAddr, l7.ClientTLS(l.ca.peerTLS(l.t, "device-1"), l.popAddr, l7.ALPNClient))
	if err != nil {
		l.t.Fatal(err)
	}
	cc, err := (&http2.Transport{DisableCompression: true}).NewClientConn(conn)
	if err != nil {
		conn.Close()
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cc.Close() })
	return cc
}

// eventually polls cond until it holds; a test that never gets there fails by
// the test binary's own timeout rather than by a timing assertion.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 0 && i%500 == 0 {
			t.Logf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startDNS serves A records from names on a loopback UDP port and NXDOMAIN for
// everything else.
func startDNS(t testing.TB, names map[string]string) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := strings.ToLower(q.Question[0].Name)
		ip, ok := names[name]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(ip),
			})
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// startServer runs handle for every connection to a loopback TCP listener and
// returns its port.
func startServer(t testing.TB, handle func(c *net.TCPConn)) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// echo copies its input back and half-closes when the input ends.
func echo(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err == nil {
		c.CloseWrite()
	}
	io.Copy(io.Discard, c)
}

// closedPort returns a loopback port with nothing listening.
func closedPort(t testing.TB) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}
