// Package logging builds the logger the ztagent and ztcloud binaries share:
// zap's console encoder at a chosen level, with repeated lines rate-limited.
// A line that repeats (the same level, logger and message) is written once per
// window; the ones held back are counted, and the next line written for that
// key carries the count as "repeated". A malformed app name that warns on
// every DNS query then costs one line a minute, not one per query, and the
// count says how often it happened. Debug lines are never held back: whoever
// turns debug on wants every one.
package logging

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Window is how long a repeated line is held back after it was written.
const Window = time.Minute

// maxKeys bounds the table of recent lines; past it, lines whose window is
// over are dropped, and if none is, new keys are written unlimited until
// some are (a flood of distinct messages is not a repeat).
const maxKeys = 4096

// New returns the binaries' logger at level.
func New(level zapcore.Level) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.Encoding = "console"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.DisableStacktrace = true
	cfg.Sampling = nil
	return cfg.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return RateLimit(c, Window, time.Now)
	}))
}

// RateLimit wraps core so that each key (level, logger name, message) is
// written at most once per window; now is the clock.
func RateLimit(core zapcore.Core, window time.Duration, now func() time.Time) zapcore.Core {
	return &limitCore{Core: core, t: &table{window: window, now: now, keys: map[lineKey]*lineState{}}}
}

type lineKey struct {
	level   zapcore.Level
	logger  string
	message string
}

type lineState struct {
	written time.Time // when the key was last written
	held    int64     // lines held back since
}

// table is shared by a core and every core derived from it with With, so that
// a repeat is caught whatever fields the logger was given.
type table struct {
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	keys map[lineKey]*lineState
}

// admit reports whether a line with key may be written now, and how many
// were held back since the last one.
func (t *table) admit(k lineKey) (ok bool, held int64) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.keys[k]
	if st != nil && now.Sub(st.written) < t.window {
		st.held++
		return false, 0
	}
	if st == nil {
		if len(t.keys) >= maxKeys {
			t.sweepLocked(now)
		}
		if len(t.keys) >= maxKeys {
			return true, 0
		}
		st = &lineState{}
		t.keys[k] = st
	}
	held, st.held, st.written = st.held, 0, now
	return true, held
}

// sweepLocked forgets keys whose window is over and that held nothing back;
// one that held lines back keeps its count for its next line.
func (t *table) sweepLocked(now time.Time) {
	for k, st := range t.keys {
		if now.Sub(st.written) >= t.window && st.held == 0 {
			delete(t.keys, k)
		}
	}
}

type limitCore struct {
	zapcore.Core
	t *table
}

func (c *limitCore) With(fields []zapcore.Field) zapcore.Core {
	return &limitCore{Core: c.Core.With(fields), t: c.t}
}

func (c *limitCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !c.Enabled(e.Level) {
		return ce
	}
	if e.Level == zapcore.DebugLevel {
		return c.Core.Check(e, ce)
	}
	ok, held := c.t.admit(lineKey{e.Level, e.LoggerName, e.Message})
	if !ok {
		return ce
	}
	if held == 0 {
		return c.Core.Check(e, ce)
	}
	return ce.AddCore(e, &countCore{Core: c.Core, held: held})
}

// countCore writes one entry with the count of the lines held back before it.
type countCore struct {
	zapcore.Core
	held int64
}

func (c *countCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	return c.Core.Write(e, append(fields, zap.Int64("repeated", c.held)))
}
