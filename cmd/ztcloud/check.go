package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/cloud/tenant"
)

// cmdCheck validates a tenant file and prints every problem in it, then every
// warning: what is valid but almost certainly not meant (users steered to apps
// no policy rule allows, as in a file cut off before its policy: section).
// Warnings do not fail the check; problems do.
func cmdCheck(args []string) error {
	fs := flag.NewFlagSet("ztcloud check", flag.ContinueOnError)
	file := fs.String("tenant", "", "tenant file (YAML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("--tenant FILE is required")
	}
	t, err := tenant.Load(*file)
	if err != nil {
		return err
	}
	printCheck(os.Stdout, *file, t)
	return nil
}

func printCheck(w io.Writer, file string, t *tenant.Tenant) {
	ws := t.Warnings()
	with := ""
	if len(ws) > 0 {
		with = fmt.Sprintf(", with %d warning(s)", len(ws))
	}
	fmt.Fprintf(w, "%s: tenant %q is valid%s: %d users, %d apps, %d publishers\n", file, t.Name, with,
		len(t.Users), len(t.Apps), len(t.Publishers))
	for _, p := range ws {
		fmt.Fprintf(w, "  warning: %s\n", p)
	}
}

// logWarnings logs the warnings of a tenant file that ztcloud loads or reloads.
func logWarnings(log *zap.Logger, file string, t *tenant.Tenant) {
	for _, p := range t.Warnings() {
		log.Warn("tenant file: "+p.String(), zap.String("file", file))
	}
}
