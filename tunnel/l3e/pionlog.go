package l3e

import (
	"fmt"
	"strings"

	"github.com/pion/logging"
	"go.uber.org/zap"
)

// LoggerFactory returns a pion logger factory that counts pion's silent drops
// into s (see RecordStats) and passes pion's warnings and errors to log at
// debug level: they come from peers, and a peer must not be able to fill the
// log.
func LoggerFactory(log *zap.Logger, s *RecordStats) logging.LoggerFactory {
	return pionFactory{log: log.Named("dtls"), stats: s}
}

type pionFactory struct {
	log   *zap.Logger
	stats *RecordStats
}

func (f pionFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With(zap.String("scope", scope)), stats: f.stats}
}

type pionLogger struct {
	log   *zap.Logger
	stats *RecordStats
}

func (l pionLogger) count(msg string) {
	switch {
	case strings.HasPrefix(msg, "discarded duplicated packet"):
		l.stats.Replayed.Add(1)
	case strings.Contains(msg, "decrypt failed"):
		l.stats.Forged.Add(1)
	}
}

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(msg string)      { l.count(msg) }
func (l pionLogger) Debugf(format string, args ...any) {
	if strings.HasPrefix(format, "discarded duplicated") || strings.Contains(format, "decrypt failed") {
		l.count(fmt.Sprintf(format, args...))
	}
}
func (l pionLogger) Info(string)                       {}
func (l pionLogger) Infof(string, ...any)              {}
func (l pionLogger) Warn(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l pionLogger) Error(msg string)                  { l.log.Debug(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
