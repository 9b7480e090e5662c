// Command ztdiag is ztagent's diagnostic and management tool, in the manner of
// nsdiag: it talks to the running daemon over its local control socket, and
// some subcommands (match --config, regex) work offline with no daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
)

const usage = `usage: ztdiag [--socket PATH] COMMAND [args]

commands:
  status [--json]                 enrollment, tunnel, DNS, apps and stub addresses
  match [flags] HOST[:PORT][/tcp|/udp]
                                  what happens to a flow or name, and why
  regex PATTERN SUBJECT...        test a pinned-app pattern with the agent's engine
  update (or -u)                  fetch the config from the tenant now (root)
  -e [key=value...]               enroll again, with new install parameters if given,
                                  e.g. -e enrollauthtoken=T [enrollencryptiontoken=K] (root)
`

// Exit statuses (README, "ztdiag"): 0 done; 1 the command failed (the daemon
// is not running, refused or answered an error); 2 bad usage or input (an
// invalid pattern); exitTimeout a pattern match timed out.
const exitTimeout = 3

// exitError carries a specific exit status (e.g. 2 for an invalid pattern).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ztdiag:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ztdiag", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	socket := fs.String("socket", platform.DefaultSocketPath(), "the daemon's control socket")
	update := fs.Bool("u", false, "fetch the config from the tenant now (same as `update`)")
	reenroll := fs.Bool("e", false, "enroll again with new install parameters (key=value...), e.g. -e enrollauthtoken=@FILE (root)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &ctlapi.Client{Socket: *socket}
	if *update {
		return cmdUpdate(ctx, c, out)
	}
	if *reenroll {
		return cmdReenroll(ctx, c, fs.Args(), out)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return &exitError{2, errors.New("no command given")}
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "status":
		return cmdStatus(ctx, c, rest, out)
	case "match":
		return cmdMatch(ctx, c, rest, out)
	case "regex":
		return cmdRegex(rest, out)
	case "update":
		return cmdUpdate(ctx, c, out)
	default:
		fs.Usage()
		return &exitError{2, fmt.Errorf("unknown command %q", cmd)}
	}
}
