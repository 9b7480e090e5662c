package platform

import (
	"fmt"

	"golang.org/x/sys/windows/svc/eventlog"
)

// Event IDs of the agent's events. EventCreate.exe, the message file of
// the source kardianos/service registers, takes IDs 1 to 1000 and shows
// the text as it is.
const (
	eventInfo    = 1
	eventWarning = 2
	eventError   = 3
)

// OpenSystemLog opens the event log source (the service's name). A source
// not registered (the agent run by hand, never installed) still logs, to
// the Application log, with a note that the message file is missing.
func OpenSystemLog(source string) (SystemLog, error) {
	l, err := eventlog.Open(source)
	if err != nil {
		return nil, fmt.Errorf("open the event log source %s: %w", source, err)
	}
	return eventLog{l}, nil
}

type eventLog struct{ l *eventlog.Log }

func (e eventLog) Info(msg string) error    { return e.l.Info(eventInfo, msg) }
func (e eventLog) Warning(msg string) error { return e.l.Warning(eventWarning, msg) }
func (e eventLog) Error(msg string) error   { return e.l.Error(eventError, msg) }
func (e eventLog) Close() error             { return e.l.Close() }
