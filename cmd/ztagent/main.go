// Command ztagent is the ztagent daemon. `ztagent run` runs it in the
// foreground or under the service manager (systemd, launchd, the Windows SCM);
// the same code path serves both, through kardianos/service. `ztagent
// install` validates and persists the install parameters and registers the
// service; `ztagent uninstall` removes the registration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/kardianos/service"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ztagent/ztagent/agent"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/cmd/internal/logging"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/platform"
)

const usage = `usage: ztagent COMMAND [flags] [key=value ...]

commands:
  run        run the daemon (in the foreground, or as the service)
  install    validate and persist the install parameters, register the service
             and start it (root/administrator)
  uninstall  stop and unregister the service and put the OS resolver back
             (state is kept)
  version    print the version
  help       this help (also --help; COMMAND --help for a command)

key=value are the install parameters, e.g.
  host=tenant.example.com token=ORGKEY upn=alice@example.com cacert=/path/ca.pem
Secrets (token, enrollauthtoken, enrollencryptiontoken, userkey) given so are
visible to every local user in ps: give them as key=@FILE (a file other users
cannot read) or in ZTAGENT_TOKEN, ZTAGENT_ENROLLAUTHTOKEN,
ZTAGENT_ENROLLENCRYPTIONTOKEN, ZTAGENT_USERKEY alongside other parameters,
or in a file given with --params-file (key=value lines, the same names).
Precedence: the command line, then the environment, then the files.
Installing again replaces the service registration and restarts it; with no
parameters at all, the ones saved by the last install are kept.

exit status: 0 done, 1 failed, 2 bad usage or input.

flags:
`

// Heap profiling is off unless asked for (agent.HeapProfilingOff); as early
// as the program's own code runs, so that no sample is taken first.
func init() { agent.HeapProfilingOff() }

func main() {
	cli.Exit("ztagent", run(os.Args[1:]))
}

// options are the flags every command shares.
type options struct {
	stateDir, socket, tunName, mdmPath string
	mtu                                int
	level                              zapcore.Level
	logDir                             string
	logMaxMB, logKeep                  int
	params                             []string
	paramFiles                         []string
	ignoreEmpty                        bool
}

func parse(cmd string, args []string) (*options, error) {
	o := &options{level: zapcore.InfoLevel}
	fs := flag.NewFlagSet("ztagent "+cmd, flag.ContinueOnError)
	fs.StringVar(&o.stateDir, "state-dir", platform.DefaultStateDir(), "state directory")
	fs.StringVar(&o.socket, "socket", platform.DefaultSocketPath(), "control socket path")
	fs.StringVar(&o.tunName, "tun", platform.DefaultTUNName(), "TUN device name")
	fs.IntVar(&o.mtu, "mtu", 0, "TUN MTU, 1280-65535; 0 follows the uplink to the PoP")
	fs.StringVar(&o.mdmPath, "mdm", "", "MDM settings file (default: the OS's managed-configuration location)")
	fs.Var(&o.level, "log-level", "log level: debug, info, warn, error")
	fs.StringVar(&o.logDir, "log-dir", platform.DefaultLogDir(), `log file directory ("" for none: standard error only); default $ZTAGENT_LOG_DIR or the OS's`)
	fs.IntVar(&o.logMaxMB, "log-max-mb", logging.DefaultMaxMB, "log file size at which it rotates, in MB")
	fs.IntVar(&o.logKeep, "log-keep", logging.DefaultKeep, "rotated log files kept")
	fs.Func("params-file", "read install parameters from this file of key=value lines (repeatable; a later file wins)",
		func(v string) error { o.paramFiles = append(o.paramFiles, v); return nil })
	fs.BoolVar(&o.ignoreEmpty, "ignore-empty", false, "ignore key= parameters with an empty value (installers that pass every property)")
	if err := cli.Parse(fs, args, usage, os.Stdout); err != nil {
		return nil, err
	}
	if o.mtu != 0 && (o.mtu < 1280 || o.mtu > 65535) {
		return nil, cli.Usagef("--mtu %d: want 1280 to 65535, or 0 to follow the uplink", o.mtu)
	}
	if o.logMaxMB < 1 || o.logKeep < 0 {
		return nil, cli.Usagef("--log-max-mb %d, --log-keep %d: want at least 1 MB and 0 or more files", o.logMaxMB, o.logKeep)
	}
	o.params = fs.Args()
	return o, nil
}

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return cli.Usage(errors.New("expected a command: run, install, uninstall"))
	}
	cmd := args[0]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Println(versionLine())
		return nil
	case "help", "--help", "-help", "-h":
		_, err := parse("", []string{"--help"})
		return err
	case "run", "install", "uninstall":
	default:
		fmt.Fprint(os.Stderr, usage)
		return cli.Usagef("unknown command %q", cmd)
	}
	o, err := parse(cmd, args[1:])
	if err != nil {
		return err
	}
	// Uninstalling needs no parameters: a bad saved file must not keep a
	// package from being removed.
	var params enroll.Params
	if cmd != "uninstall" {
		params, err = installParams(o.stateDir, o.params, paramSources{
			files: o.paramFiles, ignoreEmpty: o.ignoreEmpty, getenv: os.Getenv})
		if err != nil {
			return err
		}
	}
	logs := openLogs(cmd, o)
	defer logs.Close()
	log := logs.Logger

	prog := &program{
		log: log,
		agent: agent.New(agent.Config{
			Params:     params,
			StateDir:   o.stateDir,
			SocketPath: o.socket,
			TUNName:    o.tunName,
			MTU:        o.mtu,
			Log:        log,
			Logs:       logs,
			Version:    version,
			MDM:        mdmSource(o.mdmPath),
		}),
	}
	svc, err := service.New(prog, serviceConfig(o))
	if err != nil {
		return err
	}
	switch cmd {
	case "install":
		if err := installService(svc); err != nil {
			return err
		}
		fmt.Printf("ztagent service installed and started (%s); install parameters saved in %s\n", service.Platform(), o.stateDir)
		return nil
	case "uninstall":
		if err := uninstallService(svc); err != nil {
			return fmt.Errorf("unregister the service: %w", err)
		}
		return errors.Join(restoreResolver(o.stateDir, log), restoreRoutes(o.stateDir, log))
	}
	// Each flow and DNS query going upstream holds a descriptor: use all
	// the OS allows.
	if soft, hard, err := platform.RaiseFileLimit(); err != nil {
		log.Warn("descriptor limit", zap.Error(err))
	} else if soft > 0 {
		log.Info("descriptor limit", zap.Uint64("soft", soft), zap.Uint64("hard", hard))
	}
	return svc.Run()
}

// serviceName is the service's name in every service manager.
const serviceName = "ztagent"

// serviceConfig registers `ztagent run` with the flags given at install; the
// parameters themselves are read back from the state directory.
func serviceConfig(o *options) *service.Config {
	return &service.Config{
		Name:        serviceName,
		DisplayName: serviceName,
		Description: "Zero-trust network access agent",
		Arguments: []string{"run", "--state-dir", o.stateDir, "--socket", o.socket,
			"--tun", o.tunName, "--mtu", fmt.Sprint(o.mtu), "--log-level", o.level.String(),
			// --log-dir=DIR, one argument: an empty DIR (no log file) must
			// not vanish from the service's command line.
			"--log-dir=" + o.logDir, "--log-max-mb", fmt.Sprint(o.logMaxMB), "--log-keep", fmt.Sprint(o.logKeep)},
		Option: service.KeyValue{
			// systemd: restart after a crash; the agent repairs DNS at start.
			"Restart":           "always",
			"SuccessExitStatus": "0",
			// launchd
			"KeepAlive": true,
			"RunAtLoad": true,
			// Windows SCM: start at boot, restart 5s after a crash; a
			// crash within a minute of the last is left stopped (no
			// loop), as the SCM counts failures per reset period.
			"StartType":              "automatic",
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "5s",
			"OnFailureResetPeriod":   60,
		},
	}
}

var version = "dev"

// goRuntimePatch names the Go runtime patch the binary was built with
// (scripts/go-overlay.sh, set by the Makefile), empty without one.
var goRuntimePatch = ""

// versionLine is what `ztagent version` prints: the version, the Go
// toolchain, and the runtime patch when the build has it.
func versionLine() string {
	line := "ztagent " + version + " " + runtime.Version()
	if goRuntimePatch != "" {
		line += " (runtime patch: " + goRuntimePatch + ")"
	}
	return line
}

// openLogs returns the logger: the daemon's (run) writes to its log file
// and the system log (the Windows event log, the macOS unified log) too; install and uninstall only to standard error. A log file that cannot
// be opened is said on standard error, and the daemon runs without it.
func openLogs(cmd string, o *options) *logging.Logs {
	lo := logging.Options{Level: o.level, MaxMB: o.logMaxMB, Keep: o.logKeep}
	if cmd == "run" && o.logDir != "" {
		lo.File = filepath.Join(o.logDir, "ztagent.log")
	}
	var sysErr error
	if cmd == "run" {
		var sys platform.SystemLog
		if sys, sysErr = platform.OpenSystemLog(serviceName); sys != nil {
			lo.System = sys
		}
	}
	logs, err := logging.Open(lo)
	if err != nil {
		logs.Logger.Warn("log file not opened: logging to standard error only", zap.Error(err))
	}
	if sysErr != nil {
		logs.Logger.Warn("system log not opened", zap.Error(sysErr))
	}
	return logs
}

// installParams returns the install parameters: those given now (on the
// command line, secrets from @FILE or the environment, see
// enroll.ParseCommandLine, and in the files of src), which are validated and
// persisted in the state directory (so the service started later by the OS
// uses them), or else those persisted by an earlier install.
func installParams(stateDir string, args []string, src paramSources) (enroll.Params, error) {
	args, err := src.gather(args)
	if err != nil {
		return enroll.Params{}, err
	}
	if len(args) == 0 {
		return enroll.LoadParams(stateDir)
	}
	p, err := enroll.ParseCommandLine(args, src.getenv)
	if err != nil {
		return p, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return p, fmt.Errorf("state directory: %w", err)
	}
	return p, enroll.SaveParams(stateDir, p)
}

func mdmSource(path string) platform.MDMSource {
	if path == "" {
		return nil // the agent uses the OS's own source
	}
	return platform.NewJSONMDMSource(path)
}

// program adapts the agent to kardianos/service: Start brings the agent up
// (bounded, so a service manager is not kept waiting forever) and Stop tears it
// down.
type program struct {
	log   *zap.Logger
	agent *agent.Agent
}

// startTimeout bounds enrollment and the first config fetch.
const startTimeout = 60 * time.Second

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return p.agent.Start(ctx)
}

func (p *program) Stop(service.Service) error {
	return p.agent.Close()
}
