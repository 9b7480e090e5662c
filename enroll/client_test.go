package enroll

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// fakeTenant is a TLS server answering every request with answer, and the
// parameters that enroll with it.
func fakeTenant(t *testing.T, answer http.HandlerFunc) (Params, *httptest.Server) {
	t.Helper()
	srv := httptest.NewTLSServer(answer)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ParseParams([]string{"host=" + srv.URL, "token=org-key-0123456789abcdef", "upn=alice@demo.test", "cacert=" + ca})
	if err != nil {
		t.Fatal(err)
	}
	return p, srv
}

// TestEnrollAnswerProblems: each way an enrollment answer can go wrong has its
// own reason and sentence; "malformed" only for what is not a tenant answer.
func TestEnrollAnswerProblems(t *testing.T) {
	tests := []struct {
		name   string
		answer http.HandlerFunc
		reason string
		msg    string
	}{
		{"larger than the limit", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"certificate":"`)
			chunk := strings.Repeat("A", 1<<20)
			for n := 0; n <= tenantapi.MaxEnrollAnswer; n += len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
			io.WriteString(w, `"}`)
		}, ReasonAnswerTooLarge, fmt.Sprintf("the tenant's answer is larger than %d bytes", tenantapi.MaxEnrollAnswer)},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html>Sign in to the proxy</html>")
		}, ReasonBadResponse, "malformed enrollment answer"},
		{"no certificate", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"tenant":"demo"}`)
		}, ReasonBadResponse, "unusable certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := fakeTenant(t, tc.answer)
			_, err := EnrollUPN(context.Background(), p, zap.NewNop())
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.reason || !strings.Contains(e.Error(), tc.msg) {
				t.Fatalf("got %v, want reason %s and %q", err, tc.reason, tc.msg)
			}
			t.Log(e.Error())
		})
	}
}

// TestLostEnrollAnswerIsRetriedWithTheSameKey: an answer cut off (in its
// body or before its headers) is asked for again with the very same request —
// the same device key — a bounded number of times, and then named as lost.
func TestLostEnrollAnswerIsRetriedWithTheSameKey(t *testing.T) {
	for _, where := range []string{"body", "headers"} {
		t.Run(where, func(t *testing.T) {
			var (
				mu     sync.Mutex
				bodies [][]byte
			)
			p, _ := fakeTenant(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, b)
				mu.Unlock()
				if where == "body" {
					w.Header().Set("Content-Length", "1000")
					w.WriteHeader(http.StatusOK)
					io.WriteString(w, `{"certificate":"-----BEGIN`)
					http.NewResponseController(w).Flush()
				}
				panic(http.ErrAbortHandler)
			})
			_, err := EnrollUPN(context.Background(), p, zap.NewNop())
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonAnswerLost || !strings.Contains(e.Error(), "lost on the way to this device 3 times") {
				t.Fatalf("got %v, want the answer lost 3 times", err)
			}
			t.Log(e.Error())
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != enrollAttempts {
				t.Fatalf("%d requests, want %d", len(bodies), enrollAttempts)
			}
			for i := range bodies[1:] {
				if !bytes.Equal(bodies[i+1], bodies[0]) {
					t.Fatalf("attempt %d sent another request (another key?)", i+2)
				}
			}
		})
	}
}

// TestRefusalIsNotRetried: a tenant's refusal is final for this attempt.
func TestRefusalIsNotRetried(t *testing.T) {
	var n int
	var mu sync.Mutex
	p, _ := fakeTenant(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"org key is not valid for this tenant","reason":"bad_org_key"}`)
	})
	_, err := EnrollUPN(context.Background(), p, zap.NewNop())
	var e *Error
	if !errors.As(err, &e) || e.Reason != tenantapi.ReasonBadOrgKey {
		t.Fatalf("got %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Fatalf("a refusal was sent %d times", n)
	}
}
