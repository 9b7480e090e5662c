package logging

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestLogger(c *clock) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(RateLimit(core, time.Minute, c.now)), logs
}

// A line that repeats is written once a minute, and the next one written
// says how many were held back.
func TestRepeatedLineOncePerWindow(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	log, logs := newTestLogger(c)
	dns := log.Named("dns")
	for i := range 500 {
		dns.Warn("malformed app name", zap.Int("query", i))
		c.t = c.t.Add(100 * time.Millisecond) // 50 s in all
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d lines in 50 s, want 1", n)
	}
	c.t = c.t.Add(10 * time.Second)
	dns.Warn("malformed app name", zap.Int("query", 500))
	all := logs.All()
	if len(all) != 2 {
		t.Fatalf("%d lines after the window, want 2", len(all))
	}
	if got := all[1].ContextMap()["repeated"]; got != int64(499) {
		t.Fatalf("repeated = %v, want 499", got)
	}
	if got := all[1].ContextMap()["query"]; got != int64(500) {
		t.Fatalf("the line written is not the newest: query %v", got)
	}
	if _, ok := all[0].ContextMap()["repeated"]; ok {
		t.Fatal("the first line carries a count")
	}
}

// Keys are level, logger and message: other messages, other loggers and
// other levels are not held back by a repeat; fields do not make a line new;
// debug lines are never held back.
func TestRateLimitKeys(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	log, logs := newTestLogger(c)
	lines := []func(){
		func() { log.Named("dns").Warn("a") },
		func() { log.Named("dns").Warn("b") },
		func() { log.Named("l7").Warn("a") },
		func() { log.Named("dns").Error("a") },
		func() { log.Named("dns").With(zap.String("app", "x")).Warn("c") },
	}
	for range 3 {
		for _, l := range lines {
			l()
		}
		log.Named("dns").With(zap.String("app", "y")).Warn("c") // same key as the last one
		log.Debug("every flow")
	}
	if n := len(logs.FilterLevelExact(zapcore.DebugLevel).All()); n != 3 {
		t.Errorf("%d debug lines, want all 3", n)
	}
	if n := logs.Len() - 3; n != len(lines) {
		t.Errorf("%d lines above debug, want %d (one per key)", n, len(lines))
	}
}

// The table stays bounded under a flood of distinct messages, and keeps
// limiting once old keys can be dropped.
func TestRateLimitTableBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	log, logs := newTestLogger(c)
	lc := log.Core().(*limitCore)
	for i := range maxKeys + 100 {
		log.Info(fmt.Sprint("distinct ", i))
	}
	if n := len(lc.t.keys); n > maxKeys {
		t.Fatalf("table holds %d keys, more than %d", n, maxKeys)
	}
	if logs.Len() != maxKeys+100 {
		t.Fatalf("distinct lines held back: %d written", logs.Len())
	}
	c.t = c.t.Add(2 * time.Minute)
	for range 10 {
		log.Info("repeat")
	}
	if got := logs.FilterMessage("repeat").Len(); got != 1 {
		t.Fatalf("after a sweep a repeat was written %d times, want 1", got)
	}
}
