package platform

import (
	"fmt"
	"log/syslog"
)

// OpenSystemLog connects to syslogd's local socket (/var/run/syslog), which
// passes the lines to the unified log, as facility daemon with tag.
func OpenSystemLog(tag string) (SystemLog, error) {
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, tag)
	if err != nil {
		return nil, fmt.Errorf("connect to syslogd: %w", err)
	}
	return unixSyslog{w}, nil
}

type unixSyslog struct{ w *syslog.Writer }

func (s unixSyslog) Info(msg string) error    { return s.w.Info(msg) }
func (s unixSyslog) Warning(msg string) error { return s.w.Warning(msg) }
func (s unixSyslog) Error(msg string) error   { return s.w.Err(msg) }
func (s unixSyslog) Close() error             { return s.w.Close() }
