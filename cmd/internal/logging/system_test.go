package logging

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// fakeSystemLog records the events written, as "severity: text".
type fakeSystemLog struct {
	events []string
	fail   error
	closed bool
}

func (f *fakeSystemLog) add(sev, msg string) error {
	f.events = append(f.events, sev+": "+msg)
	return f.fail
}
func (f *fakeSystemLog) Info(msg string) error    { return f.add("info", msg) }
func (f *fakeSystemLog) Warning(msg string) error { return f.add("warning", msg) }
func (f *fakeSystemLog) Error(msg string) error   { return f.add("error", msg) }
func (f *fakeSystemLog) Close() error             { f.closed = true; return nil }

// TestSystemCoreLevels: info, warn and error (and worse) go to the system
// log as information, warning and error; debug never, even at debug level;
// the level in force applies above info.
func TestSystemCoreLevels(t *testing.T) {
	sink := &fakeSystemLog{}
	level := zap.NewAtomicLevelAt(zapcore.DebugLevel)
	log := zap.New(NewSystemCore(sink, level)).Named("tunnel")
	log.Debug("frame read")
	log.Info("tunnel up", zap.String("pop", "10.10.0.1:8443"))
	log.Warn("tunnel down", zap.Error(errors.New("EOF")))
	log.Error("config rejected")
	log.DPanic("broken invariant")
	want := []string{"info: info\ttunnel\ttunnel up\t{\"pop\": \"10.10.0.1:8443\"}", "warning: warn\ttunnel\ttunnel down\t{\"error\": \"EOF\"}",
		"error: error\ttunnel\tconfig rejected", "error: dpanic\ttunnel\tbroken invariant"}
	if strings.Join(sink.events, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(sink.events, "\n"), strings.Join(want, "\n"))
	}
	sink.events = nil
	level.SetLevel(zapcore.WarnLevel)
	log.Info("config updated")
	log.Warn("flow refused")
	if len(sink.events) != 1 || !strings.HasPrefix(sink.events[0], "warning: warn\ttunnel\tflow refused") {
		t.Fatalf("at warn level: %q", sink.events)
	}
}

// TestSystemCoreRedacts: a secret logged as the agent logs it (a typed
// tenantapi.Secret, in a field, in With fields, in a struct) reaches the
// system log as the file has it, redacted; With fields are carried.
func TestSystemCoreRedacts(t *testing.T) {
	const token = "org-key-7f3a9c1e5b"
	sink := &fakeSystemLog{}
	log := zap.New(NewSystemCore(sink, zapcore.InfoLevel)).With(zap.Stringer("token", tenantapi.Secret(token)))
	log.Info("enrolled", zap.Any("params", struct{ Token tenantapi.Secret }{tenantapi.Secret(token)}),
		zap.Stringer("user key", tenantapi.Secret(token)))
	if len(sink.events) != 1 {
		t.Fatalf("events %q", sink.events)
	}
	ev := sink.events[0]
	if strings.Contains(ev, token) || strings.Count(ev, "[redacted]") != 3 {
		t.Fatalf("event %q: want the secret redacted three times", ev)
	}
}

// TestOpenWithSystemLog: Open tees the logger into the system log at info
// and above, keeps the rate limit in front of it, and Close closes it; a
// sink that fails does not stop the other outputs.
func TestOpenWithSystemLog(t *testing.T) {
	sink := &fakeSystemLog{fail: errors.New("event log full")}
	logs, err := Open(Options{Level: zapcore.DebugLevel, System: sink})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		logs.Logger.Warn("upstream resolvers changed")
	}
	logs.Logger.Debug("query")
	if len(sink.events) != 1 {
		t.Fatalf("events %q: want the repeated warning once, no debug", sink.events)
	}
	if err := logs.Close(); err != nil || !sink.closed {
		t.Fatalf("close: %v, system log closed %v", err, sink.closed)
	}
}
