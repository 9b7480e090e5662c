//go:build linux

package netstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// realTUN is a kernel TUN device inside a network namespace created for one
// test, with 100.64.0.0/10 and fd7a::/64 routed into it. Nothing outside
// that namespace is touched.
type realTUN struct {
	ns  string
	nsf *os.File
	dev tun.Device
}

func newRealTUN(tb testing.TB) *realTUN {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates a network namespace and a TUN device")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs the ip command (iproute2)")
	}
	r := &realTUN{ns: fmt.Sprintf("ztns-test-%d-%x", os.Getpid(), randBytes(3))}
	if out, err := exec.Command("ip", "netns", "add", r.ns).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add: %v: %s", err, out)
	}
	tb.Cleanup(func() {
		if r.nsf != nil {
			r.nsf.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", r.ns).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", r.ns, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + r.ns)
	if err != nil {
		tb.Fatal(err)
	}
	r.nsf = f
	err = r.inNS(func() error {
		r.dev, err = tun.CreateTUN("zt0", testMTU)
		return err
	})
	if err != nil {
		tb.Fatalf("create TUN in %s: %v", r.ns, err)
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "zt0", "up"},
		{"addr", "add", clientV4.String() + "/32", "dev", "zt0"},
		{"-6", "addr", "add", clientV6.String() + "/128", "dev", "zt0", "nodad"},
		{"route", "add", "100.64.0.0/10", "dev", "zt0"},
		{"-6", "route", "add", "fd7a::/64", "dev", "zt0"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", r.ns}, args...)...).CombinedOutput(); err != nil {
			r.dev.Close()
			tb.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	return r
}

// inNS runs fn on an OS thread switched into the test namespace. Sockets and
// devices created by fn stay in it. If the thread cannot switch back it is
// left locked, so the runtime discards it.
func (r *realTUN) inNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(r.nsf.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func (r *realTUN) dial(tb testing.TB, addr string) *net.TCPConn {
	tb.Helper()
	var c net.Conn
	err := r.inNS(func() (err error) {
		c, err = net.Dial("tcp", addr)
		return err
	})
	if err != nil {
		tb.Fatalf("dial %s from the namespace: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestRealTUN runs kernel TCP clients in a namespace against the bridge on a
// real TUN (with the device's offloads, if the kernel offers them).
func TestRealTUN(t *testing.T) {
	r := newRealTUN(t)
	u := newUpstream(t)
	st, err := New(r.dev, Config{MTU: testMTU, Log: zaptest.NewLogger(t), TCP: func(ctx context.Context, f Flow) (net.Conn, error) {
		if f.Dst.Port() == 9 {
			return nil, errors.New("refused by policy")
		}
		return u.handler(ctx, f)
	}})
	if err != nil {
		r.dev.Close()
		t.Fatal(err)
	}
	defer st.Close()
	t.Logf("device batch size %d", r.dev.BatchSize())

	for _, addr := range []string{"100.64.0.5:80", "[fd7a::10]:443"} {
		c := r.dial(t, addr)
		srv := u.next(t)
		go echo(srv)
		want := randBytes(4 << 20)
		go func() {
			c.Write(want)
			c.CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: echoed %d of %d bytes (err %v) or they differ", addr, len(got), len(want), err)
		}
	}

	err = r.inNS(func() error {
		_, err := net.Dial("tcp", "100.64.0.7:9")
		return err
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a refused flow: %v; want connection refused", err)
	}

	// No UDP handler: the kernel socket sees ICMP port unreachable.
	err = r.inNS(func() error {
		c, err := net.Dial("udp", "100.64.0.9:53")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte("q"))
		_, err = c.Read(make([]byte, 10))
		return err
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("UDP without a handler: %v; want connection refused", err)
	}
}

// BenchmarkRealTUN measures one kernel TCP stream through a real TUN, the
// bridge and an in-memory upstream.
func BenchmarkRealTUN(b *testing.B) {
	for _, mode := range []struct {
		name     string
		gso, gro bool
	}{{"offload", true, true}, {"nogso", false, true}, {"nogro", true, false}} {
		b.Run("upload/"+mode.name, func(b *testing.B) { benchRealTUN(b, true, mode.gso, mode.gro) })
		b.Run("download/"+mode.name, func(b *testing.B) { benchRealTUN(b, false, mode.gso, mode.gro) })
	}
}

func benchRealTUN(b *testing.B, upload, gso, gro bool) {
	defer func(gso, gro bool) { enableGSO, enableGRO = gso, gro }(enableGSO, enableGRO)
	enableGSO, enableGRO = gso, gro
	r := newRealTUN(b)
	total := int64(b.N) * benchChunk
	up := newMemConn(0)
	if !upload {
		up = newMemConn(total)
	}
	st, err := New(r.dev, Config{MTU: testMTU, Log: zap.NewNop(), TCP: func(context.Context, Flow) (net.Conn, error) { return up, nil }})
	if err != nil {
		r.dev.Close()
		b.Fatal(err)
	}
	defer st.Close()
	c := r.dial(b, "100.64.0.5:80")
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	b.ResetTimer()
	if upload {
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.CloseWrite()
		io.Copy(io.Discard, c)
		if got := up.written.Load(); got != total {
			b.Fatalf("upstream received %d bytes, want %d", got, total)
		}
	} else {
		n, err := io.CopyBuffer(io.Discard, c, buf)
		if err != nil || n != total {
			b.Fatalf("client received %d bytes (%v), want %d", n, err, total)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(st.Stats().PacketsIn)/float64(b.N), "pktin/op")
	b.ReportMetric(float64(st.Stats().PacketsOut)/float64(b.N), "pktout/op")
}
