// Command ztcloud is the reference cloud side of ztagent: the tenant API
// (enrollment, config), the PoP (the L7 broker that checks policy and stitches
// client streams to publishers), the L3E gateway (DTLS, whole IP packets both
// ways between devices and the corporate network) and the publisher (which dials out to the PoP
// and connects to applications in the corporate network). Each role runs in its
// own process, or several in one for small setups and the demo.
//
//	ztcloud serve --roles tenant,pop[,publisher] --tenant FILE --state DIR ...
//	ztcloud tenant|pop|gateway --tenant FILE --state DIR ...   (one role per process)
//	ztcloud publisher --name N --token T --tenant-url URL --cacert FILE ...
//	ztcloud check --tenant FILE
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: ztcloud COMMAND [flags]

commands:
  serve      run the tenant API, the PoP and optionally a publisher (--roles)
  tenant     run only the tenant API (serve --roles tenant)
  pop        run only the PoP (serve --roles pop)
  gateway    run only the L3E gateway (serve --roles gateway)
  publisher  run a publisher that enrolls with the tenant API and dials out to the PoP
  check      validate a tenant file and print every problem in it
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ztcloud:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("expected a command")
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:])
	case "tenant", "pop", "gateway":
		// One role per process: `ztcloud pop ...` is `ztcloud serve --roles pop ...`.
		return cmdServe(ctx, append([]string{"--roles", args[0]}, args[1:]...))
	case "publisher":
		return cmdPublisher(ctx, args[1:])
	case "check":
		return cmdCheck(args[1:])
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
