package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
)

// cmdRegex tests a pinned-app pattern with the agent's own engine and options,
// so administrators see exactly what the agent will do. Every subject gets its
// line; a match that timed out (exitTimeout) or a subject that is not UTF-8
// (exit status 2) is reported after all of them, since the agent takes either
// as no match and an administrator's script must not read it as a decision.
func cmdRegex(args []string, out io.Writer) error {
	if len(args) < 2 {
		return &exitError{2, errors.New("usage: ztdiag regex PATTERN SUBJECT...")}
	}
	p, err := steering.CompilePattern(args[0])
	if err != nil {
		return &exitError{2, fmt.Errorf("invalid pattern: %w", err)}
	}
	var timedOut, invalid int
	for _, subject := range args[1:] {
		ok, err := p.MatchString(subject)
		switch {
		case errors.Is(err, steering.ErrPatternTimeout):
			timedOut++
			fmt.Fprintf(out, "timeout\t%s\t(%v: the agent takes it as no match)\n", subject, err)
		case err != nil:
			invalid++
			fmt.Fprintf(out, "error\t%s\t(%v)\n", subject, err)
		case ok:
			fmt.Fprintf(out, "match\t%s\n", subject)
		default:
			fmt.Fprintf(out, "no-match\t%s\n", subject)
		}
	}
	switch {
	case timedOut > 0:
		return &exitError{exitTimeout, fmt.Errorf("%d of %d subjects: match timed out after %v", timedOut, len(args)-1, steering.PatternTimeout)}
	case invalid > 0:
		return &exitError{2, fmt.Errorf("%d of %d subjects could not be matched", invalid, len(args)-1)}
	}
	return nil
}

func cmdUpdate(ctx context.Context, c *ctlapi.Client, out io.Writer) error {
	cs, err := c.Sync(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "config from %s, etag %s\n", cs.Source, cs.ETag)
	return nil
}

// cmdReenroll is nsdiag's -e: the daemon enrolls again with the updated
// parameters, or with the settings in force when none are given (which
// applies pending MDM changes to enrollment settings). A rejected token
// changes nothing; an accepted one is saved before the answer, and the agent
// restarts with the new identity.
func cmdReenroll(ctx context.Context, c *ctlapi.Client, args []string, out io.Writer) error {
	args, err := readSecretArgs(args)
	if err != nil {
		return err
	}
	es, err := c.Reenroll(ctx, args)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "enrolled again and saved: tenant %s, user %s, device %s; the agent is restarting with it\n", es.Tenant, es.User, es.DeviceID)
	return nil
}
