package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/ztagent/ztagent/cloud/publisher"
	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

// TestUDPThroughTunnel sends datagrams from an application (a userspace
// client behind the TUN device) to the stub of a UDP app: the agent carries
// them through the PoP and a publisher to a UDP echo and back, whole; status
// counts the flow, and the idle timeout closes it.
func TestUDPThroughTunnel(t *testing.T) {
	cloud := startCloud(t)
	echoPort := startUDPEcho(t)
	startPublisher(t, cloud, startDNS(t, "echo.corp.test.", "127.0.0.1"))
	peer, err := netstacktest.NewPeer(netstacktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	a := newTestAgent(t, cloud, shortTempDir(t))
	a.cfg.NewTUN = fakeTUNOf(peer.Device())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	p := partsOf(t, a.Agent)
	for !p.tunnelUp() {
		if ctx.Err() != nil {
			t.Fatal("tunnel not up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ans, owned := dnsPolicy{p}.Lookup("echo.corp.test")
	if !owned || !ans.Addr.IsValid() {
		t.Fatalf("echo.corp.test: %+v, owned %v", ans, owned)
	}
	c, err := peer.DialUDP(netip.AddrPortFrom(ans.Addr, echoPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<16)
	for _, size := range []int{5, 1400, 4000} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		// The first datagram may wait for the publisher to come online:
		// resend until an echo comes back.
		for {
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			if err == nil {
				if !bytes.Equal(buf[:n], msg) {
					t.Fatalf("%d-byte datagram echoed as %d bytes", size, n)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("no echo of a %d-byte datagram: %v", size, err)
			}
		}
	}
	if f := a.Status().Flows; f.Steered < 1 || f.UDPOpen != 1 {
		t.Fatalf("flows %+v: want the UDP flow steered and open", f)
	}
	p.stack.SetIdleUDP(50 * time.Millisecond)
	for f := a.Status().Flows; f.UDPOpen != 0 || f.UDPExpired < 1; f = a.Status().Flows {
		if ctx.Err() != nil {
			t.Fatalf("flows %+v: the idle flow was never closed", f)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startUDPEcho runs a loopback UDP echo and returns its port.
func startUDPEcho(t *testing.T) uint16 {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], addr)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

// startDNS answers A queries for name with addr, on a loopback port.
func startDNS(t *testing.T, name, addr string) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Name == name && q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(addr)})
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

// startPublisher runs the tenant's publisher pub1 against the cloud's PoP,
// resolving with resolver, until the test ends.
func startPublisher(t *testing.T, cloud *testCloud, resolver string) {
	cert, err := cloud.ca.IssuePublisher("test", "pub1")
	if err != nil {
		t.Fatal(err)
	}
	pub := publisher.New(publisher.Config{
		Name: "pub1", PoPAddr: cloud.popLn.Addr().String(), Resolver: resolver, Log: zap.NewNop(),
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: cloud.ca.Pool(), ServerName: "pop.test"},
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
