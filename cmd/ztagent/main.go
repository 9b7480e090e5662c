// Command ztagent is the ztagent daemon. `ztagent run` runs it in the
// foreground or under the service manager (systemd, launchd, the Windows SCM);
// the same code path serves both, through kardianos/service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kardianos/service"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ztagent/ztagent/agent"
	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/platform"
)

const usage = `usage: ztagent run [flags] [key=value ...]

Runs the ztagent daemon. key=value are the install parameters, e.g.
  host=tenant.example.com token=ORGKEY upn=alice@example.com cacert=/path/ca.pem

flags:
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ztagent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] != "run" {
		if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
			fmt.Println("ztagent", version)
			return nil
		}
		fmt.Fprint(os.Stderr, usage)
		return errors.New("expected a command: run")
	}
	fs := flag.NewFlagSet("ztagent run", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	stateDir := fs.String("state-dir", platform.DefaultStateDir(), "state directory")
	socket := fs.String("socket", platform.DefaultSocketPath(), "control socket path")
	tunName := fs.String("tun", platform.DefaultTUNName(), "TUN device name")
	mtu := fs.Int("mtu", 1420, "TUN MTU")
	mdmPath := fs.String("mdm", "", "MDM settings file (default: the OS's managed-configuration location)")
	level := zapcore.InfoLevel
	fs.Var(&level, "log-level", "log level: debug, info, warn, error")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	params, err := installParams(*stateDir, fs.Args())
	if err != nil {
		return err
	}
	log, err := newLogger(level)
	if err != nil {
		return err
	}
	defer log.Sync()

	prog := &program{
		log: log,
		agent: agent.New(agent.Config{
			Params:     params,
			MDM:        mdmSource(*mdmPath),
			StateDir:   *stateDir,
			SocketPath: *socket,
			TUNName:    *tunName,
			MTU:        *mtu,
			Log:        log,
		}),
	}
	svc, err := service.New(prog, &service.Config{
		Name:        "ztagent",
		DisplayName: "ztagent",
		Description: "Zero-trust network access agent",
	})
	if err != nil {
		return err
	}
	return svc.Run()
}

var version = "dev"

// installParams returns the install parameters: those given now, which are
// validated and persisted in the state directory (so the service started
// later by the OS uses them), or else those persisted by an earlier install.
func installParams(stateDir string, args []string) (enroll.Params, error) {
	if len(args) == 0 {
		return enroll.LoadParams(stateDir)
	}
	p, err := enroll.ParseParams(args)
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

func newLogger(level zapcore.Level) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.Encoding = "console"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.DisableStacktrace = true
	cfg.Sampling = nil
	return cfg.Build()
}
