//go:build linux

package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ztagent/ztagent/platform"
)

// floodEnv names the control socket to a child of TestControlFloodByNobody.
const floodEnv = "ZT_TEST_CTL_FLOOD"

// TestControlFloodByNobody: an unprivileged user (nobody) opening hundreds of
// keep-alive connections holds no more than its cap, and root's status call
// still answers at once. Root only: the child runs as uid 65534.
func TestControlFloodByNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root to run a client as nobody (uid 65534)")
	}
	dir := shortTempDir(t)
	if err := os.Chmod(dir, 0o755); err != nil { // nobody must reach the socket
		t.Fatal(err)
	}
	a := newFakeAgent(t, dir, nil)
	a.start(t)
	exe := filepath.Join(dir, "agent.test")
	copyFile(t, os.Args[0], exe, 0o755)
	const attempts = 400
	cmd := exec.Command(exe, "-test.run=^TestControlFloodChild$", "-test.v")
	cmd.Env = append(os.Environ(), floodEnv+"="+a.cfg.SocketPath, "ZT_TEST_CTL_FLOOD_N="+strconv.Itoa(attempts))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close() // the child holds its connections until then
	var held, refused, failed int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if n, _ := fmt.Sscanf(sc.Text(), "held=%d refused=%d failed=%d", &held, &refused, &failed); n == 3 {
			break
		}
	}
	t.Logf("nobody: %d connections attempted, %d held, %d refused, %d failed", attempts, held, refused, failed)
	if held == 0 || held > platform.DefaultControlPerUser {
		t.Errorf("nobody holds %d control connections; the cap is %d", held, platform.DefaultControlPerUser)
	}
	var worst time.Duration
	for range 20 {
		start := time.Now()
		if _, err := a.ctl.Status(context.Background()); err != nil {
			t.Fatalf("root's status while nobody holds %d connections: %v", held, err)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("root's status: slowest of 20 calls %v", worst)
}

// TestControlFloodChild is TestControlFloodByNobody's client, run as nobody:
// it opens connections, makes one status call on each and keeps those that
// were answered, prints its counts, and holds them until stdin closes.
func TestControlFloodChild(t *testing.T) {
	sock := os.Getenv(floodEnv)
	if sock == "" {
		t.Skip("run by TestControlFloodByNobody")
	}
	n, _ := strconv.Atoi(os.Getenv("ZT_TEST_CTL_FLOOD_N"))
	var held, refused, failed int
	var keep []net.Conn
	for range n {
		c, err := net.Dial("unix", sock)
		if err != nil {
			failed++
			continue
		}
		cc := &ctlConn{Conn: c, br: bufio.NewReader(c)}
		switch code, _, err := cc.status(); {
		case err == nil && code == http.StatusOK:
			held++
			keep = append(keep, c)
			continue
		case err == nil && code == http.StatusServiceUnavailable:
			refused++
		default:
			failed++
		}
		c.Close()
	}
	fmt.Printf("held=%d refused=%d failed=%d\n", held, refused, failed)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range keep {
		c.Close()
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}
