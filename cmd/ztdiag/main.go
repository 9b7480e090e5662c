// Command ztdiag is ztagent's diagnostic and management tool, in the manner of
// nsdiag: the same flags with the same letters, and long command names. It
// talks to the running daemon over its local control socket; some commands
// (match --config, regex, -x, -v) work offline with no daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/platform"
)

const usage = `usage: ztdiag [--socket PATH] [--json] COMMAND [args]
       ztdiag [--socket PATH] [--json] -FLAG [args]
commands:
  status                          enrollment, tunnel, DNS, apps and stub addresses
  match [flags] HOST[:PORT][/tcp|/udp]
                                  what happens to a flow or name, and why
  regex PATTERN SUBJECT...        (or -x) test a pinned-app pattern with the agent's engine
  update                          (or -u) fetch the config from the tenant now (root)
  version                         (or -v)
  tamper-hash < FILE              the client.tamper_password value for a password
  tamper-key -o KEYFILE           a key pair for one-time override codes (client.tamper_override_key)
  tamper-code --key KEYFILE --device ID --for 4h   issue an override code
  COMMAND --help                  a command's own flags
nsdiag's flags:
  -f   status as "Key:: Value." lines     -n   private-access status
  -u   fetch the config now (root)        -x PATTERN SUBJECT...  same as regex
  -e [key=value...]   enroll again, with new install parameters if given (root)
  -l LEVEL  the agent's log level, at once: debug, info, warn, error (root)
  -m MB     the agent's log file size at which it rotates (root)
  -o FILE [--anonymize]  diagnostics bundle (zip), secrets never in it (root)
  -r URL    timing of a request from this machine, as the agent steers it
  -t enable|disable [--password P|--code C]  turn steering on or off (root; the tenant's password
       or a one-time override code when it sets them; with a code, off until the code expires)
  -c start [-o FILE.pcap] [-s SNAPLEN] | -c stop  capture the TUN's packets (pcap, root)
  -p start [-o FILE.pcap] [-s SNAPLEN] | -p stop  capture the agent's own connections on the uplink (pcap, root)
  -g upload|download [-s SIZE] [--app ID]  speed test through the tunnel to a publisher (root)
  -v   version                            -h   this help
exit status: 0 done, 1 failed, 2 bad usage or input, 3 the agent is not running,
4 not permitted (needs root/administrator), 5 a regex match timed out
flags:
`

var version = "dev"

// stdin is where commands read standard input (tests replace it).
var stdin io.Reader = os.Stdin

func main() {
	cli.Exit("ztdiag", exitStatus(run(context.Background(), os.Args[1:], os.Stdout)))
}

// exitStatus gives the daemon's refusals their exit status: 3 when it is not
// running, 4 when it refused a call that needs root/administrator.
func exitStatus(err error) error {
	switch {
	case errors.Is(err, platform.ErrNotRunning):
		return &cli.Error{Code: cli.ExitNotRunning, Err: err}
	case ctlapi.Forbidden(err):
		return &cli.Error{Code: cli.ExitNotPermitted, Err: err}
	}
	return err
}

// commands are the long command names.
var commands = map[string]command{
	"status":  cmdStatus,
	"match":   cmdMatch,
	"regex":   cmdRegex,
	"update":  cmdUpdate,
	"version": cmdVersion,
	// tamper-hash hashes a tamper-protection password for the tenant file.
	"tamper-hash": cmdTamperHash,
	// tamper-key and tamper-code make the tenant's override-code key and
	// issue codes with it.
	"tamper-key":  cmdTamperKey,
	"tamper-code": cmdTamperCode,
}

// nsdiagFlag is one of nsdiag's flags: set when given, and the command it runs.
type nsdiagFlag struct {
	name, help string
	cmd        command
	set        bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ztdiag", flag.ContinueOnError)
	socket := fs.String("socket", platform.DefaultSocketPath(), "the daemon's control socket")
	e := &env{in: stdin, out: out}
	fs.BoolVar(&e.json, "json", false, "print JSON (every command)")
	flags := []*nsdiagFlag{
		{name: "f", help: `status as "Key:: Value." lines`, cmd: cmdStatusLines},
		{name: "n", help: "private-access status (NPA status is Connected.)", cmd: cmdNPA},
		{name: "u", help: "fetch the config from the tenant now (same as `update`)", cmd: cmdUpdate},
		{name: "x", help: "PATTERN SUBJECT...: test a pattern (same as `regex`)", cmd: cmdRegex},
		{name: "e", help: "enroll again with new install parameters (key=value...), e.g. -e enrollauthtoken=@FILE (root)", cmd: cmdReenroll},
		{name: "v", help: "print the version", cmd: cmdVersion},
	}
	for _, f := range flags {
		fs.BoolFunc(f.name, f.help, func(string) error { f.set = true; return nil })
	}
	var logReq ctlapi.LogRequest
	fs.Func("l", "LEVEL: change the agent's log level at once: debug, info, warn, error (root)", func(v string) error {
		logReq.Level = v
		return nil
	})
	fs.IntVar(&logReq.MaxMB, "m", 0, "MB: the agent's log file size at which it rotates (root)")
	var bundleFile string
	var anonymize bool
	fs.StringVar(&bundleFile, "o", "", "FILE: write the diagnostics bundle (zip) there (root); with -c or -p start, the capture file")
	fs.BoolVar(&anonymize, "anonymize", false, "with -o: hide user names, host names and private addresses")
	var requestURL string
	fs.StringVar(&requestURL, "r", "", "URL: timing of a GET of URL from this machine, as the agent steers it")
	var ro requestOptions
	fs.DurationVar(&ro.timeout, "timeout", 30*time.Second, "with -r: give up after this long")
	fs.BoolVar(&ro.insecure, "insecure", false, "with -r: do not verify the server's certificate")
	var steeringArg, password, code string
	fs.StringVar(&steeringArg, "t", "", "enable|disable: turn steering on or off (root; --password when the tenant sets one)")
	fs.StringVar(&password, "password", "", "with -t disable: the tenant's tamper-protection password (or @FILE)")
	fs.StringVar(&code, "code", "", "with -t disable: a one-time override code the tenant issued for this device (or @FILE)")
	var captureArg, uplinkArg string
	var co captureOptions
	fs.StringVar(&captureArg, "c", "", "start|stop: capture the TUN's packets into a pcap file (root; -o FILE, -s SNAPLEN)")
	fs.StringVar(&uplinkArg, "p", "", "start|stop: capture the agent's own connections on the uplink into a pcap file (root; -o FILE, -s SNAPLEN)")
	var sizeArg, speedArg, speedApp string
	fs.StringVar(&sizeArg, "s", "", "with -c or -p start: SNAPLEN, cut each captured packet to this many bytes (default 65535); with -g: SIZE, bytes to move (e.g. 10M; default 10M)")
	fs.StringVar(&speedArg, "g", "", "upload|download: speed test through the tunnel to a publisher (root; -s SIZE, --app ID)")
	fs.StringVar(&speedApp, "app", "", "with -g: the app whose selected publisher is tested (default: the first with one online)")
	notYet := notYetFlags(fs)
	// -h is defined here, not by the flag package, so that `ztdiag -f -h`
	// is -f's help.
	var help bool
	fs.BoolVar(&help, "h", false, "this help (after a flag: that flag's help)")
	fs.BoolVar(&help, "help", false, "this help")
	if err := cli.Parse(fs, args, usage, out); err != nil {
		return err
	}
	helpArgs := fs.Args()
	if help {
		helpArgs = []string{"--help"}
	}
	if err := notYet(); err != nil {
		return err
	}
	e.c = &ctlapi.Client{Socket: *socket}
	if logReq != (ctlapi.LogRequest{}) {
		flags = append(flags, &nsdiagFlag{name: "l/-m", set: true, cmd: func(ctx context.Context, e *env, args []string) error {
			return cmdSetLog(ctx, e, logReq, args)
		}})
	}
	if captureArg != "" && uplinkArg != "" {
		return cli.Usagef("give one of -c and -p, not both")
	}
	if captureArg != "" || uplinkArg != "" {
		name, action := "c", captureArg
		if uplinkArg != "" {
			name, action, co.uplink = "p", uplinkArg, true
		}
		co.file, bundleFile = bundleFile, ""
		if anonymize {
			return cli.Usagef("--anonymize goes with -o FILE alone, not with -%s", name)
		}
		flags = append(flags, &nsdiagFlag{name: name, set: true, cmd: func(ctx context.Context, e *env, args []string) error {
			return cmdCapture(ctx, e, action, co, args)
		}})
		if sizeArg != "" {
			n, err := strconv.Atoi(sizeArg)
			if err != nil || n <= 0 {
				return cli.Usagef("-s %q: want a snapshot length in bytes", sizeArg)
			}
			co.snaplen = n
		}
	}
	if speedArg != "" {
		flags = append(flags, &nsdiagFlag{name: "g", set: true, cmd: func(ctx context.Context, e *env, args []string) error {
			return cmdSpeed(ctx, e, speedArg, sizeArg, speedApp, args)
		}})
	}
	switch {
	case sizeArg != "" && captureArg == "" && uplinkArg == "" && speedArg == "":
		return cli.Usagef("-s goes with -c or -p start (SNAPLEN) or -g (SIZE)")
	case speedApp != "" && speedArg == "":
		return cli.Usagef("--app goes with -g")
	}
	if bundleFile != "" {
		flags = append(flags, &nsdiagFlag{name: "o", set: true, cmd: func(ctx context.Context, e *env, args []string) error {
			return cmdBundle(ctx, e, bundleFile, anonymize, args)
		}})
	} else if anonymize {
		return cli.Usagef("--anonymize goes with -o FILE")
	}
	if requestURL != "" {
		flags = append(flags, &nsdiagFlag{name: "r", set: true, cmd: func(ctx context.Context, e *env, args []string) error {
			return cmdRequest(ctx, e, requestURL, ro, args)
		}})
	}
	if steeringArg != "" {
		flags = append(flags, &nsdiagFlag{name: "t", set: true, cmd: func(ctx context.Context, e *env, args []string) error {
			return cmdSteering(ctx, e, steeringArg, steeringSecrets{password: password, code: code}, args)
		}})
	}
	var chosen []*nsdiagFlag
	for _, f := range flags {
		if f.set {
			chosen = append(chosen, f)
		}
	}
	switch {
	case len(chosen) > 1:
		return cli.Usagef("give one of -%s and -%s, not both", chosen[0].name, chosen[1].name)
	case len(chosen) == 1:
		return chosen[0].cmd(ctx, e, helpArgs)
	case help:
		cli.PrintUsage(out, fs, usage)
		return nil
	case fs.NArg() == 0:
		cli.PrintUsage(os.Stderr, fs, usage)
		return cli.Usagef("no command given")
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		cli.PrintUsage(out, fs, usage)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		cli.PrintUsage(os.Stderr, fs, usage)
		return cli.Usagef("unknown command %q", name)
	}
	return cmd(ctx, e, rest)
}
