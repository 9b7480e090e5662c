package pathmtu

import (
	"context"
	"io"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestClampBothEnds checks on loopback (MTU 65536) that a clamped end, the
// dialling one or the accepting one, bounds the MSS both ends send with.
func TestClampBothEnds(t *testing.T) {
	for _, tc := range []struct {
		name         string
		dial, listen bool
	}{
		{"dialler clamps", true, false},
		{"listener clamps", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lc net.ListenConfig
			if tc.listen {
				lc.Control = Control
			}
			ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			var d net.Dialer
			if tc.dial {
				d.Control = Control
			}
			c, err := d.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, ok := <-accepted
			if !ok {
				t.Fatal("accept failed")
			}
			defer s.Close()
			// Move some data so that both ends have settled their MSS.
			go func() { c.Write(make([]byte, 100_000)) }()
			if _, err := io.ReadFull(s, make([]byte, 100_000)); err != nil {
				t.Fatal(err)
			}
			for name, conn := range map[string]net.Conn{"dialler": c, "acceptor": s} {
				if mss := sendMSS(t, conn); mss <= 0 || mss > MSS("127.0.0.1:1") {
					t.Errorf("%s sends with MSS %d, want at most %d", name, mss, MSS("127.0.0.1:1"))
				}
			}
		})
	}
}

func sendMSS(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mss int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		mss, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return mss
}
