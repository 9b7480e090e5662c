package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/ztagent/ztagent/cloud/tenant"
)

// cmdCheck validates a tenant file and prints every problem in it.
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
	fmt.Printf("%s: tenant %q is valid: %d users, %d apps, %d publishers\n", *file, t.Name, len(t.Users), len(t.Apps), len(t.Publishers))
	return nil
}
