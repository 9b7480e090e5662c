package main

import (
	"context"
	"fmt"
)

const updateUsage = `usage: ztdiag update [--json]   (or ztdiag -u)
fetch the config from the tenant now (root)
flags:
`

func cmdUpdate(ctx context.Context, e *env, args []string) error {
	if err := e.noArgs("update", updateUsage, args); err != nil {
		return err
	}
	cs, err := e.c.Sync(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(cs)
	}
	fmt.Fprintf(e.out, "config from %s, etag %s\n", cs.Source, cs.ETag)
	return nil
}

const reenrollUsage = `usage: ztdiag -e [--json] [key=value...]
enroll again (root), with new install parameters if given, e.g.
  ztdiag -e enrollauthtoken=@FILE enrollencryptiontoken=@FILE2
or with the settings in force (applies pending MDM settings). Secrets given as
key=@FILE are read here, as the user running ztdiag.
flags:
`

// cmdReenroll is nsdiag's -e: the daemon enrolls again with the updated
// parameters, or with the settings in force when none are given (which
// applies pending MDM changes to enrollment settings). A rejected token
// changes nothing; an accepted one is saved before the answer, and the agent
// restarts with the new identity.
func cmdReenroll(ctx context.Context, e *env, args []string) error {
	fs, err := e.flags("-e", reenrollUsage, args, nil)
	if err != nil {
		return err
	}
	params, err := readSecretArgs(fs.Args())
	if err != nil {
		return err
	}
	es, err := e.c.Reenroll(ctx, params)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(es)
	}
	fmt.Fprintf(e.out, "enrolled again and saved: tenant %s, user %s, device %s; the agent is restarting with it\n", es.Tenant, es.User, es.DeviceID)
	return nil
}
