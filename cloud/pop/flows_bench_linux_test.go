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
// holds them idle; then closes them all. The agent's half runs in this process
// and everything else (the client OS's TCP stack, the PoP, the publisher, the
// target) in a child process, joined by a packet socket that stands in for the
// TUN device, so that this process's memory is the agent's own. Metrics:
//
//	failed, slow     connects that failed (none may), that took over 1 s (a SYN
//	                 was retransmitted)
//	syn-dropped      SYNs the agent's stack dropped (netstack Stats.SYNDropped)
//	burst-s          from the first SYN until every connect had ended
//	agent-*/flow     what one idle flow holds in the agent, over the agent before
//	                 the burst: heap in use after GC, goroutine stacks, resident
//	                 set (/proc/self/statm), goroutines
//	cloud-*/flow     the same for the child (client stack, PoP, publisher and
//	                 target together), for comparison
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
		b.ReportMetric(float64(r.failed), "failed")
		b.ReportMetric(float64(r.slow), "slow")
		b.ReportMetric(float64(r.synDropped), "syn-dropped")
		b.ReportMetric(r.burst.Seconds(), "burst-s")
		perFlow := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(flows) }
		b.ReportMetric(perFlow(r.idle.heap, r.base.heap), "agent-heap-B/flow")
		b.ReportMetric(perFlow(r.idle.stack, r.base.stack), "agent-stack-B/flow")
		b.ReportMetric(perFlow(r.idle.rss, r.base.rss), "agent-rss-B/flow")
		b.ReportMetric(perFlow(uint64(r.idle.goroutines), uint64(r.base.goroutines)), "agent-goroutines/flow")
		b.ReportMetric(perFlow(r.cloudIdle.heap, r.cloudBase.heap), "cloud-heap-B/flow")
		b.ReportMetric(perFlow(r.cloudIdle.stack, r.cloudBase.stack), "cloud-stack-B/flow")
		b.ReportMetric(perFlow(r.cloudIdle.rss, r.cloudBase.rss), "cloud-rss-B/flow")
		mb := func(a, b uint64) float64 { return (float64(a) - float64(b)) / (1 << 20) }
		b.ReportMetric(mb(r.closed.heap+r.closed.stack, r.base.heap+r.base.stack), "closed-heap-MB")
		b.ReportMetric(mb(r.closed.rss, r.base.rss), "closed-rss-MB")
		b.ReportMetric(0, "ns/op")
	}
}

// idleFlowsResult is one round of BenchmarkIdleFlows.
type idleFlowsResult struct {
	failed, slow, synDropped int
	burst                    time.Duration
	base, idle, closed       memSnap // the agent's
	cloudBase, cloudIdle     memSnap // the child's
}

func runIdleFlows(b *testing.B, flows int) idleFlowsResult {
	b.StopTimer()
	ch := startFlowsChild(b)
	client := l7.NewClient(l7.ClientConfig{Addr: ch.popAddr, TLS: ch.ca.peerTLS(b, "device-1")})
	client.Start()
	defer client.Close()
	eventually(b, "client connected", func() bool { return client.Status().State == l7.StateConnected })
	target := l7.Target{Host: "127.0.0.1", Port: ch.targetPort, AppID: appEcho}
	st, err := netstack.New(ch.dev, netstack.Config{
		Log: zap.NewNop(),
		TCP: func(ctx context.Context, _ netstack.Flow) (net.Conn, error) { return client.Open(ctx, target) },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()

	var r idleFlowsResult
	r.base = snapMem(true)
	r.cloudBase = ch.stats()
	b.StartTimer()
	var ok int
	ch.command(fmt.Sprintf("dial %d", flows), "dialed %d %d %d %d", &ok, &r.failed, &r.slow, &r.burst)
	b.StopTimer()
	r.synDropped = int(st.Stats().SYNDropped)
	eventually(b, "every flow relayed", func() bool { return st.Stats().TCPOpen == int64(ok) })
	var pinged, pingFailed int
	ch.command("ping", "pinged %d %d", &pinged, &pingFailed)
	r.failed += pingFailed
	r.idle = snapMem(false)
	r.cloudIdle = ch.stats()
	ch.command("close", "closed")
	eventually(b, "every flow closed", func() bool {
		return st.Stats().TCPOpen == 0 && client.Status().Streams == 0
	})
	r.closed = snapMem(true)
	return r
}

// memSnap is a process's memory.
type memSnap struct {
	heap, stack, rss uint64
	goroutines       int
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
	return memSnap{heap: ms.HeapInuse, stack: ms.StackInuse, rss: residentBytes(), goroutines: runtime.NumGoroutine()}
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

// flowsChild is the child process of BenchmarkIdleFlows, driven by one-line
// commands on its stdin that it answers with one "zt: " line on its stdout.
type flowsChild struct {
	b          testing.TB
	ca         *testCA
	dev        tun.Device // the agent's end of the packet socket
	popAddr    string
	targetPort uint16
	in         io.WriteCloser
	out        *bufio.Reader
}

const flowsChildEnv = "ZT_FLOWS_CHILD" // the CA file, in the child

func startFlowsChild(b testing.TB) *flowsChild {
	ch := &flowsChild{b: b, ca: newTestCA(b)}
	caPath := filepath.Join(b.TempDir(), "ca.pem")
	if err := ch.ca.save(caPath); err != nil {
		b.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	ours, theirs := packetFile(b, fds[0], "tun-agent"), packetFile(b, fds[1], "tun-client")
	defer theirs.Close()
	ch.dev = newPacketTUN(ours)

	cmd := exec.Command(os.Args[0], "-test.run=^TestFlowsChild$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), flowsChildEnv+"="+caPath)
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.Stderr = os.Stderr
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
		ch.in.Close() // the child tears down and exits
		if err := cmd.Wait(); err != nil {
			b.Errorf("child: %v", err)
		}
	})
	ch.reply("ready %s %d", &ch.popAddr, &ch.targetPort)
	return ch
}

func packetFile(b testing.TB, fd int, name string) *os.File {
	if err := unix.SetNonblock(fd, true); err != nil {
		b.Fatal(err)
	}
	return os.NewFile(uintptr(fd), name)
}

// command sends a command and scans its answer into args.
func (ch *flowsChild) command(cmd, format string, args ...any) {
	ch.b.Helper()
	if _, err := fmt.Fprintln(ch.in, cmd); err != nil {
		ch.b.Fatalf("child: %s: %v", cmd, err)
	}
	ch.reply(format, args...)
}

func (ch *flowsChild) reply(format string, args ...any) {
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

func (ch *flowsChild) stats() memSnap {
	var m memSnap
	ch.command("stats", "stats %d %d %d %d", &m.heap, &m.stack, &m.rss, &m.goroutines)
	return m
}

// TestFlowsChild is the child process of BenchmarkIdleFlows: a client OS's
// TCP stack behind the packet socket it inherits as fd 3, a PoP, a publisher
// and an echo target. It skips unless started by the benchmark.
func TestFlowsChild(t *testing.T) {
	caPath := os.Getenv(flowsChildEnv)
	if caPath == "" {
		t.Skip("the child process of BenchmarkIdleFlows")
	}
	ca, err := loadTestCA(caPath)
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, labOptions{ca: ca, noClient: true})
	port := startServer(t, smallEcho)
	peer, err := netstacktest.NewPeer(netstacktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(3, true); err != nil { // so that the poller serves it
		t.Fatal(err)
	}
	sock := os.NewFile(3, "tun-client")
	stopBridge := bridgePeer(peer.Device(), sock)
	defer func() {
		stopBridge()
		peer.Close()
	}()

	say := func(format string, args ...any) { fmt.Printf("zt: "+format+"\n", args...) }
	say("ready %s %d", l.popAddr, port)
	dst := netip.MustParseAddrPort("100.64.0.5:80")
	var conns []*netstacktest.Conn
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch cmd := strings.Fields(sc.Text()); cmd[0] {
		case "dial":
			n, _ := strconv.Atoi(cmd[1])
			var failed, slow int
			var burst time.Duration
			conns, failed, slow, burst = dialBurst(peer, dst, n)
			say("dialed %d %d %d %d", len(conns), failed, slow, burst)
		case "ping":
			failed := pingAll(conns)
			say("pinged %d %d", len(conns)-failed, failed)
		case "stats":
			m := snapMem(false)
			say("stats %d %d %d %d", m.heap, m.stack, m.rss, m.goroutines)
		case "close":
			for _, c := range conns {
				c.Close()
			}
			conns = nil
			say("closed")
		}
	}
	for _, c := range conns {
		c.Close()
	}
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
