package dnsproxy

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestTCPAcceptOutOfDescriptors: while the process is out of descriptors,
// the TCP listener neither spins on EMFILE (miekg/dns retries at once) nor
// stops serving: it retries with a backoff, and answers the client that
// waited once descriptors are free again.
func TestTCPAcceptOutOfDescriptors(t *testing.T) {
	_, addr := startProxy(t, Config{Policy: newMapPolicy(time.Minute, "app.corp.test", "100.64.0.5")})
	ap := netip.MustParseAddrPort(addr)
	// The client's socket is made first: connecting needs no descriptor.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "client")
	defer f.Close()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	free, err := unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(free)
	var cpu time.Duration
	func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(free), Max: lim.Max}); err != nil {
			t.Fatal(err)
		}
		defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
			t.Fatal(err)
		}
		before := cpuTime(t)
		time.Sleep(500 * time.Millisecond)
		cpu = cpuTime(t) - before
	}()
	if cpu > 150*time.Millisecond {
		t.Errorf("%v of CPU in 500 ms out of descriptors: the accept loop spins", cpu)
	}
	nc, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &dns.Conn{Conn: nc}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMsg(newQuery("app.corp.test.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ReadMsg()
	if err != nil {
		t.Fatalf("the client that waited out the shortage got no answer: %v", err)
	}
	if len(resp.Answer) != 1 {
		t.Fatalf("answer %v", resp)
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
