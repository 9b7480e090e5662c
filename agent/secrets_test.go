package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
)

// syncBuffer is a log sink the test reads while the agent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestIdPSignInLeavesNoSecret: an IdP sign-in (the re-authentication, a
// fresh enrollment through the tenant's sign-in page) at debug level puts
// neither the one-time IdP code, nor the password, nor the org key in any
// log line, the status or the diagnostics bundle.
func TestIdPSignInLeavesNoSecret(t *testing.T) {
	cloud := startCloud(t)
	a := newTestAgent(t, cloud, shortTempDir(t))
	var logs syncBuffer
	a.log = zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel))
	var mu sync.Mutex
	var codes []string
	a.cfg.OpenBrowser = signInBrowserSeeing(t, cloud, "alice@test.example", testPassword, func(u *url.URL) {
		if c := u.Query().Get("code"); c != "" {
			mu.Lock()
			codes = append(codes, c)
			mu.Unlock()
		}
	})
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	old := a.Status().Enrollment.DeviceID
	p := partsOf(t, a.Agent)
	p.lastAuth.Store(time.Now().Add(-2 * time.Minute).UnixNano())
	withClient(t, p, func(c *steering.ClientConfig) { c.ReauthInterval = steering.Duration(time.Minute) })
	p.reauthTick(time.Now())
	waitStatus(t, a.Agent, "signed in again", func(st ctlapi.Status) bool {
		return st.State == ctlapi.StateRunning && st.Enrollment.DeviceID != old && st.Enrollment.DeviceID != ""
	})
	mu.Lock()
	secrets := append([]string{testPassword, testOrgKey}, codes...)
	mu.Unlock()
	if len(secrets) < 3 {
		t.Fatal("the sign-in carried no IdP code: the test saw nothing to look for")
	}
	st, _ := json.Marshal(a.Status())
	var bundle strings.Builder
	for _, f := range a.bundle(false).Files {
		bundle.WriteString(f.Data)
	}
	if !strings.Contains(logs.String(), "\tDEBUG\t") {
		t.Fatal("no debug line: the test did not log at debug level")
	}
	for where, text := range map[string]string{"the log": logs.String(), "the status": string(st), "the bundle": bundle.String()} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds a secret (%d bytes)", where, len(s))
			}
		}
	}
}
