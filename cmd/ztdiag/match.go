package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cloud/tenant"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"github.com/ztagent/ztagent/steering"
)

const matchUsage = `usage: ztdiag match [flags] HOST[:PORT][/tcp|/udp]
what the agent does with a flow or name, and why
flags:
`

func cmdMatch(ctx context.Context, e *env, args []string) error {
	var cfgFile, user, osName, process, path, appID string
	fs, err := e.flags("match", matchUsage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&cfgFile, "config", "", "decide against this file (a tenant file with --user, or a steering config) instead of the daemon's live config")
		fs.StringVar(&user, "user", "", "user whose config to use from a tenant file")
		fs.StringVar(&osName, "os", runtime.GOOS, "OS of the flow's owner, for pinned-app exceptions")
		fs.StringVar(&process, "process", "", "process name owning the flow")
		fs.StringVar(&path, "path", "", "executable path owning the flow")
		fs.StringVar(&appID, "appid", "", "app id (bundle or package id) owning the flow")
	})
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usage(errors.New("usage: ztdiag match [flags] HOST[:PORT][/tcp|/udp]"))
	}
	req, err := parseTarget(fs.Arg(0))
	if err != nil {
		return cli.Usage(err)
	}
	req.OS, req.Process, req.Path, req.AppID = osName, process, path, appID
	var resp ctlapi.MatchResponse
	if cfgFile != "" {
		snap, err := loadSnapshot(cfgFile, user)
		if err != nil {
			return err
		}
		resp = ctlapi.Explain(snap, nil, req)
	} else if resp, err = e.c.Match(ctx, req); err != nil {
		return err
	}
	if e.json {
		return e.printJSON(resp)
	}
	fmt.Fprintf(e.out, "%s\n%s\n", actionTitle(resp.Action), resp.Explain)
	return nil
}

// parseTarget reads HOST[:PORT][/tcp|/udp]; IPv6 addresses with a port are
// written [addr]:port.
func parseTarget(s string) (ctlapi.MatchRequest, error) {
	req := ctlapi.MatchRequest{Proto: "tcp"}
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		req.Proto = strings.ToLower(s[i+1:])
		s = s[:i]
		if req.Proto != "tcp" && req.Proto != "udp" {
			return req, fmt.Errorf("protocol %q: want tcp or udp", req.Proto)
		}
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare name or address (IPv6 without brackets included).
		req.Host = strings.Trim(s, "[]")
		return req, nil
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return req, fmt.Errorf("port %q: want 1-65535", port)
	}
	req.Host, req.Port = host, uint16(p)
	return req, nil
}

// loadSnapshot compiles a tenant file (for user) or a steering config file.
func loadSnapshot(file, user string) (*steering.Snapshot, error) {
	if strings.HasSuffix(file, ".yaml") || strings.HasSuffix(file, ".yml") {
		t, err := tenant.Load(file)
		if err != nil {
			return nil, err
		}
		if user == "" {
			return nil, cli.Usage(errors.New("--user is needed with a tenant file"))
		}
		ac, err := t.AgentConfig(user)
		if err != nil {
			return nil, err
		}
		return steering.Compile(&ac.Steering)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cfg, err := steering.ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return steering.Compile(cfg)
}

// actionTitle names a decision as administrators know it: a flow that is not
// steered is bypassed.
func actionTitle(action string) string {
	switch action {
	case "direct":
		return "BYPASS (direct)"
	case "l7":
		return "L7 tunnel"
	case "l3e":
		return "L3E tunnel"
	case ctlapi.ActionRefuse:
		return "REFUSED (steered, but not carried)"
	default:
		return strings.ToUpper(action)
	}
}
