package main

import (
	"flag"
	"fmt"

	"github.com/ztagent/ztagent/cmd/internal/cli"
)

// notYet are nsdiag's flags ztdiag does not do yet. Each is accepted by the
// parser so that it is refused by name, "not supported yet", with exit
// status 1: never taken for something else, never pretended.
var notYet = []struct{ name, value, help string }{}

// notYetFlags defines the flags of notYet in fs; the function returned
// refuses the first one given.
func notYetFlags(fs *flag.FlagSet) func() error {
	var given string
	for _, f := range notYet {
		fs.Func(f.name, f.value+": "+f.help+" (not supported yet)", func(string) error {
			if given == "" {
				given = f.name
			}
			return nil
		})
	}
	return func() error {
		if given == "" {
			return nil
		}
		return &cli.Error{Code: cli.ExitFailure, Err: fmt.Errorf("-%s is not supported yet", given)}
	}
}
