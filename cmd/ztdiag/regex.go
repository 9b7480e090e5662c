package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/steering"
)

const regexUsage = `usage: ztdiag regex [--json] PATTERN SUBJECT...   (or ztdiag -x PATTERN SUBJECT...)
test a pinned-app pattern with the agent's own engine; each subject is
match, no-match, timeout (exit status 5) or error (exit status 2)
flags:
`

// regexResult is one subject's line, and its JSON form.
type regexResult struct {
	Subject string `json:"subject"`
	Result  string `json:"result"` // match, no-match, timeout, error
	Error   string `json:"error,omitempty"`
}

// cmdRegex tests a pinned-app pattern with the agent's own engine and options,
// so administrators see exactly what the agent will do. Every subject gets its
// line; a match that timed out (cli.ExitTimeout) or a subject that is not UTF-8
// (exit status 2) is reported after all of them, since the agent takes either
// as no match and an administrator's script must not read it as a decision.
func cmdRegex(_ context.Context, e *env, args []string) error {
	fs, err := e.flags("regex", regexUsage, args, nil)
	if err != nil {
		return err
	}
	args = fs.Args()
	if len(args) < 2 {
		return cli.Usage(errors.New("usage: ztdiag regex PATTERN SUBJECT..."))
	}
	p, err := steering.CompilePattern(args[0])
	if err != nil {
		return cli.Usage(fmt.Errorf("invalid pattern: %w", err))
	}
	var timedOut, invalid int
	results := make([]regexResult, 0, len(args)-1)
	for _, subject := range args[1:] {
		r := regexResult{Subject: subject, Result: "no-match"}
		ok, err := p.MatchString(subject)
		switch {
		case errors.Is(err, steering.ErrPatternTimeout):
			timedOut++
			r.Result, r.Error = "timeout", fmt.Sprintf("%v: the agent takes it as no match", err)
		case err != nil:
			invalid++
			r.Result, r.Error = "error", err.Error()
		case ok:
			r.Result = "match"
		}
		results = append(results, r)
		if !e.json {
			printRegexResult(e, r)
		}
	}
	if e.json {
		if err := e.printJSON(results); err != nil {
			return err
		}
	}
	switch {
	case timedOut > 0:
		return &cli.Error{Code: cli.ExitTimeout, Err: fmt.Errorf("%d of %d subjects: match timed out after %v", timedOut, len(args)-1, steering.PatternTimeout)}
	case invalid > 0:
		return cli.Usage(fmt.Errorf("%d of %d subjects could not be matched", invalid, len(args)-1))
	}
	return nil
}

func printRegexResult(e *env, r regexResult) {
	if r.Error != "" {
		fmt.Fprintf(e.out, "%s\t%s\t(%s)\n", r.Result, r.Subject, r.Error)
		return
	}
	fmt.Fprintf(e.out, "%s\t%s\n", r.Result, r.Subject)
}
