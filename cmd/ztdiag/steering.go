package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

const steeringUsage = `usage: ztdiag -t enable|disable [--password P|@FILE | --code C|@FILE] [--json]
turn steering on or off (root). Off, the agent steers nothing: every flow goes
direct and every name to the OS's resolvers, until it is turned on again (also
across restarts). When the tenant sets a tamper-protection password
(client.tamper_password), turning it off needs it; when it issues one-time
override codes (client.tamper_override_key), a code issued for this device
does too, and steering is off until the code expires, when the agent turns
it on again by itself.
flags:
`

// steeringSecrets are what -t disable may need: the tenant's password or an
// override code, each given as is or as @FILE.
type steeringSecrets struct{ password, code string }

// cmdSteering is nsdiag's -t.
func cmdSteering(ctx context.Context, e *env, arg string, sec steeringSecrets, args []string) error {
	if err := e.noArgs("-t", steeringUsage, args); err != nil {
		return err
	}
	var on bool
	switch strings.ToLower(arg) {
	case "enable":
		on = true
	case "disable":
	default:
		return cli.Usagef("-t %q: want enable or disable", arg)
	}
	if sec.password != "" && sec.code != "" {
		return cli.Usagef("give --password or --code, not both")
	}
	req := ctlapi.SteeringRequest{On: on}
	for _, s := range []struct {
		flag, v string
		to      *string
	}{{"--password", sec.password, &req.Password}, {"--code", sec.code, &req.Code}} {
		*s.to = s.v
		if strings.HasPrefix(s.v, "@") {
			b, err := tenantapi.ReadSecret(s.v)
			if err != nil {
				return cli.Usage(fmt.Errorf("%s: %w", s.flag, err))
			}
			*s.to = string(b)
		}
	}
	st, err := e.c.SetSteering(ctx, req)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(st)
	}
	state := "on"
	switch {
	case !st.On && !st.Until.IsZero():
		state = "off until " + st.Until.Local().Format(time.RFC3339) + " (the override code's expiry), then on again"
	case !st.On:
		state = "off"
	}
	fmt.Fprintf(e.out, "Steering:: %s.\nTamper Protection:: %s.\n", state, tamperRule(&st))
	return nil
}

const tamperHashUsage = `usage: ztdiag tamper-hash < password-file
print the client.tamper_password value for the tenant file, the hash of the
password read from standard input (its first line); the password itself is
never in the config
flags:
`

// cmdTamperHash prints a tamper-protection password's hash.
func cmdTamperHash(_ context.Context, e *env, args []string) error {
	if err := e.noArgs("tamper-hash", tamperHashUsage, args); err != nil {
		return err
	}
	line, err := bufio.NewReader(e.in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	password := strings.TrimRight(line, "\r\n")
	if len(password) < 8 {
		return cli.Usagef("the password on standard input must have 8 characters or more")
	}
	h, err := steering.HashTamperPassword(password)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(map[string]string{"tamper_password": h})
	}
	fmt.Fprintln(e.out, h)
	return nil
}
