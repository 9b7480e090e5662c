package agent

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// LogControl is the agent's own log as the control API reaches it: its
// level and the log file's size change at once, without a restart, until
// the agent restarts (the service's flags set them at start).
type LogControl interface {
	Level() zapcore.Level
	SetLevel(zapcore.Level)
	// File is the current log file, "" when there is none.
	File() string
	// Limits are the file's size in megabytes and the rotated files kept.
	Limits() (maxMB, keep int)
	SetMaxSize(mb int) error
	// Files are the log files, the current one first.
	Files() []string
}

func (a *Agent) logStatus() *ctlapi.LogStatus {
	lc := a.cfg.Logs
	if lc == nil {
		return nil
	}
	maxMB, keep := lc.Limits()
	return &ctlapi.LogStatus{Level: lc.Level().String(), File: lc.File(), MaxMB: maxMB, Keep: keep}
}

var errNoLogControl = errors.New("this agent's log cannot be changed while it runs")

// serveLog is `ztdiag -l` with no level: the log in force.
func (a *Agent) serveLog(w http.ResponseWriter, _ *http.Request) {
	st := a.logStatus()
	if st == nil {
		writeError(w, http.StatusNotImplemented, errNoLogControl)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// serveSetLog is `ztdiag -l LEVEL` and `ztdiag -m MB` (root). Both are
// checked before either is applied, so a bad request changes nothing.
func (a *Agent) serveSetLog(w http.ResponseWriter, req *http.Request) {
	lc := a.cfg.Logs
	if lc == nil {
		writeError(w, http.StatusNotImplemented, errNoLogControl)
		return
	}
	var lr ctlapi.LogRequest
	if err := tenantapi.DecodeStrict(http.MaxBytesReader(w, req.Body, 4<<10), &lr); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("log request: %w", err))
		return
	}
	level, err := parseLevel(lr.Level)
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, err)
		return
	case lr.MaxMB < 0:
		writeError(w, http.StatusBadRequest, fmt.Errorf("log file size %d MB: want at least 1", lr.MaxMB))
		return
	case lr.MaxMB > 0 && lc.File() == "":
		writeError(w, http.StatusConflict, errors.New("the agent writes no log file (see its --log-dir): its size cannot be set"))
		return
	}
	if lr.MaxMB > 0 {
		if err := lc.SetMaxSize(lr.MaxMB); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		a.log.Info("log file size changed", zap.Int("max_mb", lr.MaxMB))
	}
	if lr.Level != "" {
		lc.SetLevel(level)
		a.log.Info("log level changed", zap.Stringer("level", level))
	}
	writeJSON(w, http.StatusOK, a.logStatus())
}

// parseLevel reads debug, info, warn or error; "" is info (and unused).
func parseLevel(s string) (zapcore.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return zapcore.InfoLevel, nil
	case "debug":
		return zapcore.DebugLevel, nil
	case "warn", "warning":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return zapcore.InfoLevel, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}
