package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
)

// env is what every command is given: the daemon's client, where to print,
// and whether to print JSON (--json before the command, or the command's own).
type env struct {
	c    *ctlapi.Client
	in   io.Reader
	out  io.Writer
	json bool
}

// command is one of ztdiag's commands (a name or a flag) with its arguments.
type command func(ctx context.Context, e *env, args []string) error

// flags returns a command's flag set, with --json (default: e.json), parsed
// from args; -h/--help prints usage and ends the command with status 0.
func (e *env) flags(name, usage string, args []string, define func(fs *flag.FlagSet)) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet("ztdiag "+name, flag.ContinueOnError)
	fs.BoolVar(&e.json, "json", e.json, "print JSON")
	if define != nil {
		define(fs)
	}
	return fs, cli.Parse(fs, args, usage, e.out)
}

// noArgs parses a command's flags (--json alone) from args, which must
// hold nothing else.
func (e *env) noArgs(name, usage string, args []string) error {
	fs, err := e.flags(name, usage, args, nil)
	if err == nil && fs.NArg() > 0 {
		err = cli.Usagef("%s takes no other arguments: %q", name, fs.Args())
	}
	return err
}

// printJSON writes v as indented JSON.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
