package platform

import (
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// chanSource is a packetSource fed by the test.
type chanSource struct {
	in     chan []byte
	closed chan struct{}
}

func newChanSource() *chanSource {
	return &chanSource{in: make(chan []byte), closed: make(chan struct{})}
}

func (s *chanSource) Read(buf []byte) (int, error) {
	select {
	case p := <-s.in:
		return copy(buf, p), nil
	case <-s.closed:
		return 0, net.ErrClosed
	}
}

func (s *chanSource) Close() error { close(s.closed); return nil }

// TestVMCapture: the user-space capture (Windows') passes nothing before
// SetEndpoints, then only the endpoints' packets from each source, cut to
// nothing and whole, and ends with net.ErrClosed at Close, its readers gone.
func TestVMCapture(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	v4, v6 := newChanSource(), newChanSource()
	c := newVMCapture("Ethernet", []packetSource{v4, v6})
	defer c.Close() // on a failure too, so the leak check sees the real fault
	if c.Interface() != "Ethernet" {
		t.Errorf("Interface() = %q", c.Interface())
	}
	pop := ap("192.0.2.10:443")
	me4, me6 := ap("10.0.0.2:40000"), ap("[2001:db8:1::2]:40000")
	dns6 := ap("[2001:db8::53]:53")

	v4.in <- ipPacket(ProtoTCP, me4, pop, 0) // no filter yet: dropped
	// The reader takes the next packet only when it is done with that one,
	// so once this send returns the first was judged without a filter. This
	// one is another program's, dropped with or without the filter.
	v4.in <- ipPacket(ProtoTCP, me4, ap("192.0.2.99:443"), 0)
	if err := c.SetEndpoints([]Endpoint{{ProtoTCP, pop}, {ProtoUDP, dns6}}); err != nil {
		t.Fatal(err)
	}
	v4.in <- ipPacket(ProtoTCP, me4, ap("192.0.2.99:443"), 0) // another program's
	out := ipPacket(ProtoTCP, me4, pop, 0)
	v4.in <- out
	in6 := ipPacket(ProtoUDP, dns6, me6, 0)
	v6.in <- in6

	got := map[int]bool{}
	buf := make([]byte, 1500)
	for range 2 {
		n, orig, err := c.ReadPacket(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n != orig {
			t.Errorf("read %d of %d bytes", n, orig)
		}
		got[n] = true
	}
	if !got[len(out)] || !got[len(in6)] {
		t.Errorf("read packets of %v bytes, want the outgoing IPv4 (%d) and the incoming IPv6 (%d)", got, len(out), len(in6))
	}
	small := make([]byte, 10)
	v4.in <- out
	if n, orig, err := c.ReadPacket(small); err != nil || n != 10 || orig != len(out) {
		t.Errorf("into 10 bytes: %d of %d, %v", n, orig, err)
	}

	// A packet the test hands over after the one read: none arrives from the
	// other program's flow, so the capture is quiet.
	v4.in <- ipPacket(ProtoUDP, me4, pop, 0) // TCP's endpoint, UDP
	quiet := make(chan struct{})
	go func() {
		defer close(quiet)
		if _, _, err := c.ReadPacket(buf); !errors.Is(err, net.ErrClosed) {
			t.Errorf("after Close: %v, want net.ErrClosed", err)
		}
	}()
	select {
	case <-quiet:
		t.Fatal("ReadPacket returned before Close")
	case <-time.After(50 * time.Millisecond):
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	<-quiet
}
