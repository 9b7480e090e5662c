package platform

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPacketCapture (root): the packet socket reads a datagram to one of
// the endpoints, once although loopback carries it twice, from its IP
// header on with its whole length; a datagram to another port of the same
// address is not read; Close ends a blocked read with net.ErrClosed.
func TestPacketCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_RAW) for a packet socket")
	}
	mine, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := OpenUplinkCapture()
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EAFNOSUPPORT) {
		t.Skipf("no packet socket here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ep := mine.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := c.SetEndpoints([]Endpoint{{ProtoUDP, ep}}); err != nil {
		t.Fatal(err)
	}
	send := func(to netip.AddrPort, payload string) {
		conn, err := (&net.Dialer{}).DialContext(context.Background(), "udp4", to.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte(payload))
	}
	send(other.LocalAddr().(*net.UDPAddr).AddrPort(), "not mine")
	send(ep, "mine: 0123456789")
	send(ep, "mine again")

	buf := make([]byte, 30) // cuts both datagrams (28 + 16, 28 + 10 bytes)
	got := make(chan [3]int, 4)
	go func() {
		for {
			n, orig, err := c.ReadPacket(buf)
			if err != nil {
				got <- [3]int{-1, 0, 0}
				return
			}
			got <- [3]int{n, orig, int(buf[9])}
		}
	}()
	for i, want := range [][3]int{{30, 28 + 16, ProtoUDP}, {30, 28 + 10, ProtoUDP}} {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("packet %d: read %d of %d bytes, protocol %d; want %v", i, g[0], g[1], g[2], want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("packet %d never read", i)
		}
	}
	select {
	case g := <-got:
		t.Fatalf("a third packet read (%v): the other port's, or a loopback copy", g)
	case <-time.After(200 * time.Millisecond):
	}
	c.Close()
	select {
	case g := <-got:
		if g[0] != -1 {
			t.Fatalf("after Close: %v", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the read")
	}
}
