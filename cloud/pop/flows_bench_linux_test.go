//go:build linux

package pop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ztagent/ztagent/tunnel/l7"
	"github.com/ztagent/ztagent/tunnel/netstack"
	"github.com/ztagent/ztagent/tunnel/netstack/netstacktest"
)

// BenchmarkIdleFlows opens 10,000 TCP flows at once from a client OS through
// the agent's data path (netstack.Stack on a TUN device, then l7.Client) to the
// PoP, a publisher and an echo target; checks every flow with a one-byte echo;
// holds them idle; then closes them all. The agent's half runs in this process;
// the client OS's TCP stack, the PoP and the publisher in a child process, joined
// to it by a packet socket that stands in for the TUN device; the target in a
// second child (each flow costs the cloud two descriptors, the target two more).
// This process's memory is thus the agent's own. Metrics:
//
//	failed           connects or echoes that failed (none may)
//	syn-dropped      SYNs the agent's stack dropped (netstack Stats.SYNDropped)
//	burst-s          from the first SYN until every connect had ended
//	connect-p50-ms, connect-max-ms   connect times in the burst
//	agent-*/flow     what one idle flow holds in the agent, over the agent before
//	                 the burst: heap in use and goroutine stacks after GC,
//	                 resident set (/proc/self/statm) after debug.FreeOSMemory,
//	                 goroutines
//	burst-peak-rss-MB  the agent's peak resident set during the burst, over before
//	cloud-*/flow     the same for the client stack, PoP and publisher together
//	closed-*-MB      what the agent still holds once every flow has closed, after
//	                 debug.FreeOSMemory, over the agent before the burst
//
//	go test -run '^$' -bench IdleFlows -benchtime 1x ./cloud/pop/
func BenchmarkIdleFlows(b *testing.B) {
	b.Run("flows=10000", func(b *testing.B) { benchIdleFlows(b, 10000) })
}

func benchIdleFlows(b *testing.B, flows int) {
	for range b.N {
		r := runIdleFlows(b, flows)
		perFlow := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(max(r.open, 1)) }
		mb := func(a, b uint64) float64 { return (float64(a) - float64(b)) / (1 << 20) }
		for _, m := range []struct {
			v    float64
			unit string
		}{
			{float64(r.failed), "failed"},
			{float64(r.synDropped), "syn-dropped"},
			{r.burst.Seconds(), "burst-s"},
			{float64(r.connectP50.Milliseconds()), "connect-p50-ms"},
			{float64(r.connectMax.Milliseconds()), "connect-max-ms"},
			{perFlow(r.idle.heap, r.base.heap), "agent-heap-B/flow"},
			{perFlow(r.idle.stack, r.base.stack), "agent-stack-B/flow"},
			{perFlow(r.idleRSS, r.base.rss), "agent-rss-B/flow"},
			{perFlow(uint64(r.idle.goroutines), uint64(r.base.goroutines)), "agent-goroutines/flow"},
			{mb(r.burstPeak, r.base.rss), "burst-peak-rss-MB"},
			{perFlow(r.cloudIdle.heap, r.cloudBase.heap), "cloud-heap-B/flow"},
			{perFlow(r.cloudIdle.stack, r.cloudBase.stack), "cloud-stack-B/flow"},
			{perFlow(r.cloudIdle.goroutines, r.cloudBase.goroutines), "cloud-goroutines/flow"},
			{mb(r.closed.heap+r.closed.stack, r.base.heap+r.base.stack), "closed-heap-MB"},
			{mb(r.closed.rss, r.base.rss), "closed-rss-MB"},
			{0, "ns/op"},
		} {
			b.ReportMetric(m.v, m.unit)
		}
	}
}

// idleFlowsResult is one round of BenchmarkIdleFlows.
type idleFlowsResult struct {
	open, failed, synDropped int
	burst                    time.Duration
	connectP50, connectMax   time.Duration
	burstPeak, idleRSS       uint64  // the agent's
	base, idle, closed       memSnap // the agent's
	cloudBase, cloudIdle     memSnap // the cloud child's
}

func runIdleFlows(b *testing.B, flows int) idleFlowsResult {
	b.StopTimer()
	target := startTestChild(b, "TestFlowsTarget", nil, nil)
	var port uint16
	target.reply("ready %d", &port)
	dev, cloud := startFlowsCloud(b)
	var popAddr string
	cloud.reply("ready %s", &popAddr)

	client := l7.NewClient(l7.ClientConfig{Addr: popAddr, TLS: testCAOf(b, cloud).peerTLS(b, "device-1")})
	client.Start()
	defer client.Close()
	eventually(b, "client connected", func() bool { return client.Status().State == l7.StateConnected })
	t := l7.Target{Host: "127.0.0.1", Port: port, AppID: appEcho}
	st, err := netstack.New(dev, netstack.Config{
		Log: zap.NewNop(),
		TCP: func(ctx context.Context, _ netstack.Flow) (net.Conn, error) { return client.Open(ctx, t) },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()

	var r idleFlowsResult
	r.base = snapMem(true)
	r.cloudBase = cloud.stats()
	resetPeakRSS()
	b.StartTimer()
	cloud.command(fmt.Sprintf("dial %d", flows), "dialed %d %d %d %d %d",
		&r.open, &r.failed, &r.burst, &r.connectP50, &r.connectMax)
	b.StopTimer()
	r.burstPeak = peakRSS()
	r.synDropped = int(st.Stats().SYNDropped)
	eventually(b, "every flow relayed", func() bool { return st.Stats().TCPOpen == int64(r.open) })
	var pinged, pingFailed int
	cloud.command("ping", "pinged %d %d", &pinged, &pingFailed)
	r.failed += pingFailed
	r.idle = snapMem(false)
	r.idleRSS = snapMem(true).rss
	r.cloudIdle = cloud.stats()
	cloud.command("close", "closed")
	eventually(b, "every flow closed", func() bool {
		return st.Stats().TCPOpen == 0 && client.Status().Streams == 0
	})
	r.closed = snapMem(true)
	return r
}

// memSnap is a process's memory.
type memSnap struct {
	heap, stack, rss, goroutines uint64
}

// snapMem collects garbage (and returns it to the OS when free is set) and
// reads the process's memory.
func snapMem(free bool) memSnap {
	runtime.GC()
	runtime.GC()
	if free {
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnap{heap: ms.HeapInuse, stack: ms.StackInuse, rss: residentBytes(), goroutines: uint64(runtime.NumGoroutine())}
}

// residentBytes is the process's resident set size.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// resetPeakRSS resets the process's peak resident set size (VmHWM).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident set size since the last reset.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// testChild is this test binary run as a child process for one test function,
// driven by one-line commands on its stdin that it answers with one "zt: "
// line on its stdout. Closing its stdin ends it.
type testChild struct {
	b   testing.TB
	in  io.WriteCloser
	out *bufio.Reader
	dir string // a directory the parent and the child share
}

// childEnv is set, to the shared directory, in a child process.
const childEnv = "ZT_TEST_CHILD"

func startTestChild(b testing.TB, test string, extra []*os.File, prepare func(dir string)) *testChild {
	ch := &testChild{b: b, dir: b.TempDir()}
	if prepare != nil {
		prepare(ch.dir)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), childEnv+"="+ch.dir)
	cmd.ExtraFiles = extra // from fd 3
	cmd.Stderr = os.Stderr
	var err error
	if ch.in, err = cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	ch.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ch.in.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("%s: %v", test, err)
		}
	})
	return ch
}

// command sends a command and scans its answer into args.
func (ch *testChild) command(cmd, format string, args ...any) {
	ch.b.Helper()
	if _, err := fmt.Fprintln(ch.in, cmd); err != nil {
		ch.b.Fatalf("child: %s: %v", cmd, err)
	}
	ch.reply(format, args...)
}

func (ch *testChild) reply(format string, args ...any) {
	ch.b.Helper()
	for {
		line, err := ch.out.ReadString('\n')
		if err != nil {
			ch.b.Fatalf("child: %v", err)
		}
		if rest, ok := strings.CutPrefix(line, "zt: "); ok {
			if _, err := fmt.Sscanf(rest, format, args...); err != nil {
				ch.b.Fatalf("child answered %q: %v", line, err)
			}
			return
		}
		ch.b.Logf("child: %s", strings.TrimSpace(line))
	}
}

func (ch *testChild) stats() memSnap {
	var m memSnap
	ch.command("stats", "stats %d %d %d %d", &m.heap, &m.stack, &m.rss, &m.goroutines)
	return m
}

// serveChild answers the parent's commands with do until the parent closes
// our stdin; "stats" is answered here.
func serveChild(do func(cmd []string) string) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd := strings.Fields(sc.Text())
		var answer string
		if len(cmd) > 0 && cmd[0] == "stats" {
			m := snapMem(false)
			answer = fmt.Sprintf("stats %d %d %d %d", m.heap, m.stack, m.rss, m.goroutines)
		} else {
			answer = do(cmd)
		}
		fmt.Printf("zt: %s\n", answer)
	}
}

// childDir is the directory shared with the parent, or "" when the test runs
// on its own (and skips).
func childDir(t *testing.T) string {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("a child process of BenchmarkIdleFlows")
	}
	return dir
}

// TestFlowsTarget is BenchmarkIdleFlows's target: an echo server.
func TestFlowsTarget(t *testing.T) {
	childDir(t)
	port := startServer(t, smallEcho)
	fmt.Printf("zt: ready %d\n", port)
	serveChild(func([]string) string { return "?" })
}

// startFlowsCloud starts the cloud child and returns the agent's end of the
// packet socket that joins it to the client OS's stack.
func startFlowsCloud(b testing.TB) (tun.Device, *testChild) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	ours, theirs := packetFile(b, fds[0], "tun-agent"), packetFile(b, fds[1], "tun-client")
	defer theirs.Close()
	ch := startTestChild(b, "TestFlowsCloud", []*os.File{theirs}, func(dir string) {
		if err := newTestCA(b).save(filepath.Join(dir, "ca.pem")); err != nil {
			b.Fatal(err)
		}
	})
	return newPacketTUN(ours), ch
}

// testCAOf is the CA the cloud child issues certificates from.
func testCAOf(b testing.TB, ch *testChild) *testCA {
	ca, err := loadTestCA(filepath.Join(ch.dir, "ca.pem"))
	if err != nil {
		b.Fatal(err)
	}
	return ca
}

func packetFile(b testing.TB, fd int, name string) *os.File {
	if err := unix.SetNonblock(fd, true); err != nil {
		b.Fatal(err)
	}
	return os.NewFile(uintptr(fd), name)
}

// TestFlowsCloud is BenchmarkIdleFlows's cloud: a client OS's TCP stack behind
// the packet socket it inherits as fd 3, a PoP and a publisher.
func TestFlowsCloud(t *testing.T) {
	dir := childDir(t)
	ca, err := loadTestCA(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, labOptions{ca: ca, noClient: true})
	peer, err := netstacktest.NewPeer(netstacktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(3, true); err != nil { // so that the poller serves it
		t.Fatal(err)
	}
	stopBridge := bridgePeer(peer.Device(), os.NewFile(3, "tun-client"))
	defer func() {
		stopBridge()
		peer.Close()
	}()

	fmt.Printf("zt: ready %s\n", l.popAddr)
	dst := netip.MustParseAddrPort("100.64.0.5:80")
	var conns []*netstacktest.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	serveChild(func(cmd []string) string {
		switch cmd[0] {
		case "dial":
			n, _ := strconv.Atoi(cmd[1])
			var b burst
			conns, b = dialBurst(peer, dst, n)
			return fmt.Sprintf("dialed %d %d %d %d %d", len(conns), b.failed, b.took, b.p50, b.max)
		case "ping":
			failed := pingAll(conns)
			return fmt.Sprintf("pinged %d %d", len(conns)-failed, failed)
		case "close":
			for _, c := range conns {
				c.Close()
			}
			conns = nil
			return "closed"
		}
		return "?"
	})
}

// bridgePeer carries packets between a peer's device and a packet socket
// until the returned stop is called.
func bridgePeer(dev tun.Device, sock *os.File) (stop func()) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // peer → socket
		defer wg.Done()
		bufs, sizes := [][]byte{make([]byte, 1<<16)}, []int{0}
		for {
			n, err := dev.Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			for i := range n {
				if _, err := sock.Write(bufs[i][:sizes[i]]); err != nil {
					return
				}
			}
		}
	}()
	go func() { // socket → peer
		defer wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				return
			}
			dev.Write([][]byte{buf[:n]}, 0)
		}
	}()
	return func() {
		sock.Close()
		dev.Close()
		wg.Wait()
	}
}

// packetTUN is a tun.Device over a packet socket: one packet per read, one
// write per packet.
type packetTUN struct {
	f         *os.File
	events    chan tun.Event
	closeOnce sync.Once
}

func newPacketTUN(f *os.File) *packetTUN {
	d := &packetTUN{f: f, events: make(chan tun.Event, 1)}
	d.events <- tun.EventUp
	return d
}

func (d *packetTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.f.Read(bufs[0][offset:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

func (d *packetTUN) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := d.f.Write(b[offset:]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (d *packetTUN) Close() error {
	var err error
	d.closeOnce.Do(func() {
		err = d.f.Close()
		close(d.events)
	})
	return err
}

func (d *packetTUN) File() *os.File           { return nil }
func (d *packetTUN) MTU() (int, error)        { return 1420, nil }
func (d *packetTUN) Name() (string, error)    { return d.f.Name(), nil }
func (d *packetTUN) Events() <-chan tun.Event { return d.events }
func (d *packetTUN) BatchSize() int           { return 1 }
