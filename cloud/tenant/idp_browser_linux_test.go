package tenant

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/net/websocket"

	"github.com/ztagent/ztagent/enroll"
)

// TestEnrollIdPChromium drives the whole IdP enrollment through a real headless
// Chromium: the agent opens it on the tenant's sign-in page, the test types the
// user and password into the page over the DevTools protocol and clicks Sign in,
// and Chromium follows the redirect to the agent's loopback listener.
func TestEnrollIdPChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	bin := findChromium(t)
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	l := newLabWithClock(t, idpTenant(t, ""), log, nil)
	spki := spkiHash(t, l.srv.Certificate())

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var browser *chromium
	defer func() {
		if browser != nil {
			browser.close()
		}
	}()
	open := func(url string) error {
		var err error
		if browser, err = startChromium(ctx, bin, t.TempDir(), spki, url); err != nil {
			return err
		}
		return browser.signIn(ctx, "alice@demo.test", alicePassword)
	}
	id, err := enroll.EnrollIdP(ctx, l.idpParams("upn=alice@demo.test"), open, log)
	checkEnrollOutcomeFor(t, "alice@demo.test", id, err, "", "")
	// The browser ends on the agent's loopback page.
	text, err := browser.waitEval(ctx, `(location.pathname === "/ztagent/idp/callback" && document.getElementById("result")) ? document.getElementById("result").textContent : ""`)
	if err != nil || !strings.HasPrefix(text, "Signed in.") {
		t.Errorf("browser's last page: %q %v", text, err)
	}
	checkNoSecrets(t, logs, alicePassword)
}

// findChromium returns Debian's chromium, installing it when running as root
// and it is missing; otherwise the test is skipped, loudly.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: chromium is not installed and this is not root; install Debian's chromium to run the IdP browser test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	install := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "chromium")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	t.Log("chromium missing: apt-get install -y chromium")
	if out, err := install(); err != nil {
		exec.CommandContext(ctx, "apt-get", "update").Run()
		if out2, err := install(); err != nil {
			t.Skipf("SKIPPED: cannot install chromium: %v\n%s\n%s", err, out, out2)
		}
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Skipf("SKIPPED: chromium installed but not found: %v", err)
	}
	return p
}

func spkiHash(t *testing.T, cert *x509.Certificate) string {
	t.Helper()
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// chromium is one headless browser process and a DevTools connection to its page.
type chromium struct {
	cmd  *exec.Cmd
	done chan struct{}
	ws   *websocket.Conn
	mu   sync.Mutex
	id   int
}

func startChromium(ctx context.Context, bin, profile, spki, url string) (*chromium, error) {
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
		// Trust exactly the test tenant's server key, not every certificate.
		"--ignore-certificate-errors-spki-list="+spki, url)
	// Its own process group, so that close ends the renderers and helpers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &chromium{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	port, err := c.devToolsPort(ctx, profile)
	if err == nil {
		err = c.connect(ctx, port)
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// devToolsPort reads the port Chromium chose from DevToolsActivePort.
func (c *chromium) devToolsPort(ctx context.Context, profile string) (int, error) {
	for {
		if data, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			line, _, _ := strings.Cut(string(data), "\n")
			if port, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && port > 0 {
				return port, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("chromium did not open its DevTools port: %w", ctx.Err())
		case <-c.done:
			return 0, errors.New("chromium exited at start")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// connect attaches to the page target over its DevTools websocket.
func (c *chromium) connect(ctx context.Context, port int) error {
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for {
		var targets []struct{ Type, WebSocketDebuggerURL string }
		resp, err := http.Get(base + "/json/list")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
		}
		for _, tg := range targets {
			if tg.Type == "page" && tg.WebSocketDebuggerURL != "" {
				ws, err := websocket.Dial(tg.WebSocketDebuggerURL, "", base)
				if err != nil {
					return err
				}
				c.ws = ws
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no page target in chromium: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// call sends one DevTools command and returns its result.
func (c *chromium) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id++
	id := c.id
	if dl, ok := ctx.Deadline(); ok {
		c.ws.SetDeadline(dl)
	}
	if err := websocket.JSON.Send(c.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return nil, err
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Message string }
		}
		if err := websocket.JSON.Receive(c.ws, &msg); err != nil {
			return nil, err
		}
		if msg.ID != id {
			continue // an event
		}
		if msg.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, msg.Error.Message)
		}
		return msg.Result, nil
	}
}

// eval evaluates a JavaScript expression in the page and returns its string value.
func (c *chromium) eval(ctx context.Context, expr string) (string, error) {
	res, err := c.call(ctx, "Runtime.evaluate", map[string]any{"expression": "String(" + expr + ")", "returnByValue": true})
	if err != nil {
		return "", err
	}
	var out struct {
		Result struct{ Value string }
	}
	err = json.Unmarshal(res, &out)
	return out.Result.Value, err
}

// waitEval polls expr until it is non-empty.
func (c *chromium) waitEval(ctx context.Context, expr string) (string, error) {
	for {
		v, err := c.eval(ctx, expr)
		if err == nil && v != "" {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s: %w (last %q, %v)", expr, ctx.Err(), v, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// signIn types into the sign-in form as a user would and clicks Sign in.
func (c *chromium) signIn(ctx context.Context, upn, password string) error {
	if _, err := c.waitEval(ctx, `document.readyState === "complete" && document.getElementById("signin") ? "ready" : ""`); err != nil {
		return err
	}
	for _, f := range []struct{ id, text string }{{"upn", upn}, {"password", password}} {
		if _, err := c.eval(ctx, `(document.getElementById("`+f.id+`").value = "", document.getElementById("`+f.id+`").focus())`); err != nil {
			return err
		}
		if _, err := c.call(ctx, "Input.insertText", map[string]any{"text": f.text}); err != nil {
			return err
		}
	}
	_, err := c.eval(ctx, `document.getElementById("submit").click()`)
	return err
}

// close ends the browser's process group and waits until every process in it
// has gone, so that nothing writes into the profile while it is removed.
func (c *chromium) close() {
	if c.ws != nil {
		c.ws.Close()
	}
	pgid := c.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-c.done
	for i := 0; i < 200 && syscall.Kill(-pgid, 0) == nil; i++ {
		time.Sleep(25 * time.Millisecond)
	}
}
