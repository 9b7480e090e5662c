package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// The tenant's side of override codes, run by its administrators where the
// private key is kept: tamper-key makes the key pair, tamper-code issues a
// code for one device. The agent only ever sees the public key and codes.

const tamperKeyUsage = `usage: ztdiag tamper-key -o KEYFILE
make a key pair for one-time override codes: the private key goes to KEYFILE
(mode 0600; keep it with the tenant's administrators, never on devices), and
the client.tamper_override_key value for the tenant file is printed
flags:
`

// cmdTamperKey makes an override-code key pair.
func cmdTamperKey(_ context.Context, e *env, args []string) error {
	var file string
	fs, err := e.flags("tamper-key", tamperKeyUsage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "o", "", "where to write the private key (a new file)")
	})
	if err != nil {
		return err
	}
	if file == "" || fs.NArg() > 0 {
		return cli.Usagef("tamper-key needs -o KEYFILE and nothing else")
	}
	pub, priv := steering.NewTamperOverrideKey()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, priv)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(file)
		return err
	}
	if e.json {
		return e.printJSON(map[string]string{"tamper_override_key": pub, "private_key_file": file})
	}
	fmt.Fprintln(e.out, pub)
	return nil
}

const tamperCodeUsage = `usage: ztdiag tamper-code --key KEYFILE --device ID (--for 4h | --until TIME)
issue a one-time override code: with it, an administrator of the device ID
(ztdiag status shows it) turns steering off until the code expires
(ztdiag -t disable --code C); at most 7 days ahead
flags:
`

// cmdTamperCode issues an override code.
func cmdTamperCode(_ context.Context, e *env, args []string) error {
	var key, device, until string
	var valid time.Duration
	fs, err := e.flags("tamper-code", tamperCodeUsage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&key, "key", "", "the private key file tamper-key wrote")
		fs.StringVar(&device, "device", "", "the device's ID")
		fs.DurationVar(&valid, "for", 0, "how long the code is valid from now")
		fs.StringVar(&until, "until", "", "when the code expires (RFC 3339)")
	})
	if err != nil {
		return err
	}
	if key == "" || device == "" || fs.NArg() > 0 || (valid == 0) == (until == "") {
		return cli.Usagef("tamper-code needs --key, --device and one of --for and --until")
	}
	expiry := time.Now().Add(valid)
	if until != "" {
		if expiry, err = time.Parse(time.RFC3339, until); err != nil {
			return cli.Usage(fmt.Errorf("--until: %w", err))
		}
	}
	if d := time.Until(expiry); d <= 0 || d > steering.MaxOverrideValidity {
		return cli.Usagef("the code must expire in the next %v", steering.MaxOverrideValidity)
	}
	priv, err := tenantapi.ReadSecretFile(key)
	if err != nil {
		return err
	}
	code, err := steering.IssueTamperOverride(string(priv), device, expiry)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(map[string]string{"code": code, "device": device, "expires": expiry.UTC().Format(time.RFC3339)})
	}
	fmt.Fprintln(e.out, code)
	return nil
}
