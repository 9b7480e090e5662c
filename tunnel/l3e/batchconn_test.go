package l3e

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestBatchConn: datagrams read in one batch come out one per Read, in
// order; writes between Hold and Flush leave in order at the Flush, writes
// outside a hold at once.
func TestBatchConn(t *testing.T) {
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	raw, err := net.Dial("udp", peer.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := NewBatchConn(raw)
	defer c.Close()
	b := c.(*BatchConn)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))

	const n = 3 * sockBatch / 2
	b.Hold()
	for i := range n {
		if _, err := c.Write(fmt.Appendf(nil, "up %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	var from net.Addr
	for i := range n {
		if i == sockBatch { // the first full batch left on its own
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		m, addr, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if got, want := string(buf[:m]), fmt.Sprintf("up %d", i); got != want {
			t.Fatalf("peer got %q, want %q", got, want)
		}
		from = addr
	}
	c.Write([]byte("unheld"))
	if m, _, err := peer.ReadFrom(buf); err != nil || string(buf[:m]) != "unheld" {
		t.Fatalf("unheld write: %q, %v", buf[:m], err)
	}
	for i := range n {
		peer.WriteTo(fmt.Appendf(nil, "down %d", i), from)
	}
	for i := range n {
		m, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(buf[:m]), fmt.Sprintf("down %d", i); got != want {
			t.Fatalf("read %q, want %q", got, want)
		}
	}
}
