package platform

// SystemLog is the system log where the platform has one: the Windows event
// log (source "ztagent", which the service's install registers with
// EventCreate.exe as its message file and its uninstall removes), the macOS
// unified log (through syslogd's socket). Linux has none here: under
// systemd, standard error is the journal already, and writing the journal
// too would log each line twice. Its methods are those of
// cmd/internal/logging.SystemLog, which writes to it.
type SystemLog interface {
	Info(msg string) error
	Warning(msg string) error
	Error(msg string) error
	Close() error
}
