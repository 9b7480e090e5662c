// Package logging builds the logger the ztagent and ztcloud binaries share:
// zap's console encoder at a chosen level, with repeated lines rate-limited,
// to standard error (the journal under systemd) and, for the agent, to a
// log file that rotates by size (Rotator) and to the system log where the
// platform has one (SystemLog: the Windows event log, the macOS unified
// log), at info and above. The level and the file's size change while the
// agent runs (`ztdiag -l`, `-m`), through Logs.
// A line that repeats (the same level, logger and message) is written once per
// window; the ones held back are counted, and the next line written for that
// key carries the count as "repeated". A malformed app name that warns on
// every DNS query then costs one line a minute, not one per query, and the
// count says how often it happened. Debug lines are never held back: whoever
// turns debug on wants every one.
package logging

import (
	"errors"
	"os"
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

// New returns the binaries' logger at level, to standard error.
func New(level zapcore.Level) (*zap.Logger, error) {
	logs, err := Open(Options{Level: level})
	return logs.Logger, err
}

// Options say how the agent logs.
type Options struct {
	Level zapcore.Level
	// File is the log file, written besides standard error; "" for none.
	File string
	// MaxMB is the file's size at which it rotates; Keep is how many
	// rotated files are kept.
	MaxMB, Keep int
	// System, when set, is the system log, which gets the lines at info
	// and above (NewSystemCore); Close closes it.
	System SystemLog
}

// Default log file size and rotated files kept.
const (
	DefaultMaxMB = 10
	DefaultKeep  = 5
)

// Logs is the agent's logger, with its level and log file, which may
// change while it runs.
type Logs struct {
	Logger *zap.Logger
	level  zap.AtomicLevel
	file   *Rotator  // nil: standard error only
	system SystemLog // nil: none
}

// Open returns the logger o describes. When the log file cannot be opened
// (no rights to the directory, say), it returns a logger to standard error
// alone, with the error, so that the caller can say so and go on.
func Open(o Options) (*Logs, error) {
	l := &Logs{level: zap.NewAtomicLevelAt(o.Level), system: o.System}
	enc := encoderConfig()
	stderr := zapcore.Lock(os.Stderr)
	cores := []zapcore.Core{zapcore.NewCore(zapcore.NewConsoleEncoder(enc), stderr, l.level)}
	var err error
	if o.File != "" {
		if l.file, err = OpenRotator(o.File, o.MaxMB, o.Keep); err == nil {
			cores = append(cores, zapcore.NewCore(zapcore.NewConsoleEncoder(enc), l.file, l.level))
		}
	}
	if o.System != nil {
		cores = append(cores, NewSystemCore(o.System, l.level))
	}
	core := RateLimit(zapcore.NewTee(cores...), Window, time.Now)
	l.Logger = zap.New(core, zap.AddCaller(), zap.ErrorOutput(stderr))
	return l, err
}

// encoderConfig is how every line is encoded: zap's production keys, ISO
// 8601 times.
func encoderConfig() zapcore.EncoderConfig {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return enc
}

// Level is the level in force.
func (l *Logs) Level() zapcore.Level { return l.level.Level() }

// SetLevel changes the level at once, for every logger derived from Logger.
func (l *Logs) SetLevel(level zapcore.Level) { l.level.SetLevel(level) }

// ErrNoFile is the error of changing the log file's size when the agent
// logs to standard error only.
var ErrNoFile = errors.New("the agent writes no log file (see its --log-dir)")

// File is the current log file, "" when there is none.
func (l *Logs) File() string {
	if l.file == nil {
		return ""
	}
	return l.file.Path()
}

// Limits are the log file's size in megabytes and the rotated files kept.
func (l *Logs) Limits() (maxMB, keep int) {
	if l.file == nil {
		return 0, 0
	}
	return l.file.Limits()
}

// SetMaxSize changes the log file's size, at once.
func (l *Logs) SetMaxSize(mb int) error {
	if l.file == nil {
		return ErrNoFile
	}
	return l.file.SetMaxSize(mb)
}

// Files are the log files, the current one first.
func (l *Logs) Files() []string {
	if l.file == nil {
		return nil
	}
	return l.file.Files()
}

// Close flushes the logger and closes the file and the system log.
func (l *Logs) Close() error {
	l.Logger.Sync()
	var errs []error
	if l.system != nil {
		errs = append(errs, l.system.Close())
	}
	if l.file != nil {
		errs = append(errs, l.file.Close())
	}
	return errors.Join(errs...)
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
