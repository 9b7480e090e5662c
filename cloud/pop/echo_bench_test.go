package pop

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// BenchmarkEcho measures one 56-byte ICMP echo to 127.0.0.1: "direct" from
// a fresh ICMP socket per echo (as the publisher's own), "tunnel" the same
// echo through client → PoP → publisher → host, one at a time. ns/op of
// "tunnel" minus "direct" is what the tunnel adds to a ping's round trip.
//
//	go test -run '^$' -bench Echo -benchtime 2s ./cloud/pop/
func BenchmarkEcho(b *testing.B) {
	if !canPing() {
		b.Skip("SKIPPED LOUDLY: no ICMP socket (not root, outside net.ipv4.ping_group_range)")
	}
	data := bytes.Repeat([]byte{0xa5}, 56)
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if err := pingDirect(i, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	l := newLab(b, labOptions{})
	b.Run("tunnel", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			rep, err := l.client.Echo(context.Background(), l7.EchoRequest{Host: "127.0.0.1", AppID: appEcho, Data: data})
			if err != nil || !bytes.Equal(rep.Data, data) {
				b.Fatalf("echo: %v", err)
			}
		}
	})
}

// pingDirect sends one echo to 127.0.0.1 from a fresh socket (a ping socket,
// else a raw one) and waits for its reply.
func pingDirect(seq int, data []byte) error {
	c, err := icmp.ListenPacket("udp4", "127.0.0.1")
	to := net.Addr(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		if c, err = icmp.ListenPacket("ip4:icmp", "127.0.0.1"); err != nil {
			return err
		}
		to = &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	seq &= 0xffff
	msg, _ := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x7a7a, Seq: seq, Data: data}}).Marshal(nil)
	if _, err := c.WriteTo(msg, to); err != nil {
		return err
	}
	buf := make([]byte, 512)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq {
			return nil
		}
	}
}
