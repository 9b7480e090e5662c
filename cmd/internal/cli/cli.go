// Package cli holds what ztagent's and ztdiag's command lines share: the
// documented exit statuses, an error that carries one, and flag parsing
// where -h/--help prints the usage on standard output and is not an error
// (an administrator's `ztdiag status --help` exits 0), while a bad flag is a
// usage error (exit status 2) with the usage on standard error.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// The exit statuses of ztagent and ztdiag (README, "ztdiag").
const (
	ExitOK           = 0
	ExitFailure      = 1 // the command failed
	ExitUsage        = 2 // bad usage or input
	ExitNotRunning   = 3 // the agent is not running (no control socket, or refused)
	ExitNotPermitted = 4 // the agent refused the call: it needs root/administrator
	// ExitTimeout is ztdiag regex's: a pattern match timed out, so the agent
	// takes the subject as not matching.
	ExitTimeout = 5
)

// Error is an error with the exit status it ends the command with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Usage wraps err as a usage error (exit status 2).
func Usage(err error) error { return &Error{ExitUsage, err} }

// Usagef is Usage of a formatted error.
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

// Code is the exit status for err: 0 for nil and for a help request, the
// status an *Error carries, and 1 for any other error.
func Code(err error) int {
	var e *Error
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &e):
		return e.Code
	}
	return ExitFailure
}

// Parse parses args into fs. On -h or --help it writes usage and fs's flags
// to help and returns flag.ErrHelp (Code gives 0); a bad flag is a usage
// error, with usage written to standard error.
func Parse(fs *flag.FlagSet, args []string, usage string, help io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		PrintUsage(help, fs, usage)
		return flag.ErrHelp
	}
	PrintUsage(os.Stderr, fs, usage)
	return Usage(err)
}

// PrintUsage writes usage and fs's flags to w.
func PrintUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// Exit ends the process with err's exit status, after printing err (but
// not a help request) on standard error as "prog: err".
func Exit(prog string, err error) {
	code := Code(err)
	if err != nil && code != ExitOK {
		fmt.Fprintln(os.Stderr, prog+":", err)
	}
	os.Exit(code)
}
