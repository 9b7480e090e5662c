package main

import (
	"context"
	"fmt"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
)

const logUsage = `usage: ztdiag [-l LEVEL] [-m MB] [--json]
change the agent's log at once, without a restart, until it restarts (root):
-l its level (debug, info, warn, error), -m its log file's size in MB
flags:
`

// cmdSetLog is nsdiag's -l and -m.
func cmdSetLog(ctx context.Context, e *env, req ctlapi.LogRequest, args []string) error {
	if err := e.noArgs("-l", logUsage, args); err != nil {
		return err
	}
	if req.MaxMB < 0 {
		return cli.Usagef("-m %d: want at least 1 MB", req.MaxMB)
	}
	ls, err := e.c.SetLog(ctx, req)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(ls)
	}
	printLog(e, ls)
	return nil
}

func printLog(e *env, ls ctlapi.LogStatus) {
	if ls.File == "" {
		fmt.Fprintf(e.out, "Log level:: %s.\nLog file:: none (standard error only).\n", ls.Level)
		return
	}
	fmt.Fprintf(e.out, "Log level:: %s.\nLog file:: %s, rotated at %d MB, %d kept.\n", ls.Level, ls.File, ls.MaxMB, ls.Keep)
}
