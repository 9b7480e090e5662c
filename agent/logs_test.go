package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
)

// fakeLogs is a LogControl in memory.
type fakeLogs struct {
	level zapcore.Level
	file  string
	maxMB int
}

func (f *fakeLogs) Level() zapcore.Level     { return f.level }
func (f *fakeLogs) SetLevel(l zapcore.Level) { f.level = l }
func (f *fakeLogs) File() string             { return f.file }
func (f *fakeLogs) Limits() (int, int)       { return f.maxMB, 3 }
func (f *fakeLogs) SetMaxSize(mb int) error  { f.maxMB = mb; return nil }
func (f *fakeLogs) Files() []string          { return []string{f.file} }

// TestSetLog: `ztdiag -l`/`-m` change the log at once (root only); a bad
// request changes nothing.
func TestSetLog(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		admin bool
		file  string
		code  int
		level zapcore.Level
		maxMB int
	}{
		{"level", `{"level":"debug"}`, true, "/l/ztagent.log", http.StatusOK, zapcore.DebugLevel, 10},
		{"size", `{"max_mb":3}`, true, "/l/ztagent.log", http.StatusOK, zapcore.InfoLevel, 3},
		{"both", `{"level":"WARN","max_mb":2}`, true, "/l/ztagent.log", http.StatusOK, zapcore.WarnLevel, 2},
		{"not root", `{"level":"debug"}`, false, "/l/ztagent.log", http.StatusForbidden, zapcore.InfoLevel, 10},
		{"bad level", `{"level":"loud","max_mb":2}`, true, "/l/ztagent.log", http.StatusBadRequest, zapcore.InfoLevel, 10},
		{"bad size", `{"level":"debug","max_mb":-1}`, true, "/l/ztagent.log", http.StatusBadRequest, zapcore.InfoLevel, 10},
		{"unknown field", `{"levle":"debug"}`, true, "/l/ztagent.log", http.StatusBadRequest, zapcore.InfoLevel, 10},
		{"size without a file", `{"level":"debug","max_mb":2}`, true, "", http.StatusConflict, zapcore.InfoLevel, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &fakeLogs{level: zapcore.InfoLevel, file: tc.file, maxMB: 10}
			a := &Agent{cfg: Config{Logs: logs}, log: zap.NewNop()}
			req := httptest.NewRequest(http.MethodPost, ctlapi.PathLog, strings.NewReader(tc.body))
			req = req.WithContext(context.WithValue(req.Context(), credKey{}, platform.Cred{Admin: tc.admin}))
			w := httptest.NewRecorder()
			admin(a.serveSetLog)(w, req)
			if w.Code != tc.code || logs.level != tc.level || logs.maxMB != tc.maxMB {
				t.Fatalf("answer %d %s; level %v, %d MB; want %d, %v, %d MB", w.Code, w.Body, logs.level, logs.maxMB, tc.code, tc.level, tc.maxMB)
			}
			if tc.code == http.StatusOK {
				var ls ctlapi.LogStatus
				if err := json.Unmarshal(w.Body.Bytes(), &ls); err != nil || ls.Level != tc.level.String() || ls.MaxMB != tc.maxMB || ls.Keep != 3 {
					t.Fatalf("answer %+v, %v", ls, err)
				}
			}
		})
	}
}

func TestLogWithoutControl(t *testing.T) {
	a := &Agent{log: zap.NewNop()}
	w := httptest.NewRecorder()
	a.serveLog(w, httptest.NewRequest(http.MethodGet, ctlapi.PathLog, nil))
	if w.Code != http.StatusNotImplemented {
		t.Fatalf("answer %d", w.Code)
	}
	if a.logStatus() != nil {
		t.Fatal("a log status without log control")
	}
}
