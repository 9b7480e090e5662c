package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ztagent/ztagent/agent"
	"github.com/ztagent/ztagent/steering"
)

// cmdRegex tests a pinned-app pattern with the agent's own engine and options,
// so administrators see exactly what the agent will do.
func cmdRegex(args []string, out io.Writer) error {
	if len(args) < 2 {
		return &exitError{2, errors.New("usage: ztdiag regex PATTERN SUBJECT...")}
	}
	p, err := steering.CompilePattern(args[0])
	if err != nil {
		return &exitError{2, fmt.Errorf("invalid pattern: %w", err)}
	}
	for _, subject := range args[1:] {
		ok, err := p.MatchString(subject)
		switch {
		case err != nil:
			fmt.Fprintf(out, "error\t%s\t(%v)\n", subject, err)
		case ok:
			fmt.Fprintf(out, "match\t%s\n", subject)
		default:
			fmt.Fprintf(out, "no-match\t%s\n", subject)
		}
	}
	return nil
}

func cmdUpdate(ctx context.Context, c *client, out io.Writer) error {
	var cs agent.ConfigStatus
	if err := c.do(ctx, "POST", "/v1/sync", nil, &cs); err != nil {
		return err
	}
	fmt.Fprintf(out, "config from %s, etag %s\n", cs.Source, cs.ETag)
	return nil
}

// cmdReenroll is nsdiag's -e: the daemon enrolls again with the updated
// parameters (a rejected token changes nothing) and restarts with the new
// identity.
func cmdReenroll(ctx context.Context, c *client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return &exitError{2, errors.New("usage: ztdiag -e key=value... (e.g. enrollauthtoken=TOKEN)")}
	}
	var es agent.EnrollmentStatus
	if err := c.do(ctx, "POST", "/v1/enroll", agent.ReenrollRequest{Args: args}, &es); err != nil {
		return err
	}
	fmt.Fprintf(out, "enrolled again: tenant %s, user %s, device %s; the agent is restarting\n", es.Tenant, es.User, es.DeviceID)
	return nil
}
