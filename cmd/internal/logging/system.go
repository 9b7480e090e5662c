package logging

import (
	"strings"

	"go.uber.org/zap/zapcore"
)

// SystemLog is the platform's system log (platform.OpenSystemLog): the
// Windows event log, the macOS unified log through syslog. Each call writes
// one event of that severity.
type SystemLog interface {
	Info(msg string) error
	Warning(msg string) error
	Error(msg string) error
	Close() error
}

// systemCore writes the events that matter, info and above, to a system log:
// info as information, warn as a warning, error and worse as an error. The
// line is the log file's (the same encoder and fields, so the same
// redaction: secrets are redacted where they are logged, by their types)
// without the time, which the system log stamps itself.
type systemCore struct {
	level zapcore.LevelEnabler
	enc   zapcore.Encoder
	sink  SystemLog
}

// NewSystemCore returns a core that writes the entries level enables, and
// never below info, to sink.
func NewSystemCore(sink SystemLog, level zapcore.LevelEnabler) zapcore.Core {
	enc := encoderConfig()
	enc.TimeKey = ""
	return &systemCore{level: level, enc: zapcore.NewConsoleEncoder(enc), sink: sink}
}

func (c *systemCore) Enabled(l zapcore.Level) bool {
	return l >= zapcore.InfoLevel && c.level.Enabled(l)
}

func (c *systemCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fields {
		f.AddTo(enc)
	}
	return &systemCore{level: c.level, enc: enc, sink: c.sink}
}

func (c *systemCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *systemCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(e, fields)
	if err != nil {
		return err
	}
	msg := strings.TrimSuffix(buf.String(), "\n")
	buf.Free()
	switch {
	case e.Level >= zapcore.ErrorLevel:
		return c.sink.Error(msg)
	case e.Level == zapcore.WarnLevel:
		return c.sink.Warning(msg)
	}
	return c.sink.Info(msg)
}

func (c *systemCore) Sync() error { return nil }
