package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
)

const speedUsage = `usage: ztdiag -g upload|download [-s SIZE] [--app ID] [--json]
speed test through the L7 tunnel: the agent sends SIZE bytes to (upload) or
receives them from (download) the publisher the last probe round selected for
the app (default: the first app with one online), through the PoP, and says
how fast it went. SIZE is bytes, or with K, M or G (KiB, MiB, GiB); default
10M, at most 1G. The bytes go no further than the publisher. Root only.
flags:
`

const defaultSpeedBytes = 10 << 20

// cmdSpeed is nsdiag's -g.
func cmdSpeed(ctx context.Context, e *env, dir, size, app string, args []string) error {
	if err := e.noArgs("-g", speedUsage, args); err != nil {
		return err
	}
	dir = strings.ToLower(dir)
	if dir != "upload" && dir != "download" {
		return cli.Usagef("-g %q: want upload or download", dir)
	}
	n := int64(defaultSpeedBytes)
	if size != "" {
		var err error
		if n, err = parseSize(size); err != nil {
			return cli.Usage(fmt.Errorf("-s: %w", err))
		}
	}
	r, err := e.c.Speed(ctx, ctlapi.SpeedRequest{Direction: dir, Bytes: n, App: app})
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(r)
	}
	fmt.Fprintf(e.out, "Speed Test:: %s %d bytes in %.3f s: %.1f Mbit/s (app %s, publisher %s, through %s).\n",
		r.Direction, r.Bytes, r.Duration.Seconds(), r.Mbps, r.App, r.Publisher, orDash(r.PoP))
	return nil
}

// parseSize reads a size in bytes, or with a K, M or G suffix (binary).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	num := s
	if mult > 1 {
		num = s[:len(s)-1]
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 1 || v > (1<<30)/mult {
		return 0, fmt.Errorf("%q: want a size from 1 byte to 1G, e.g. 10M", s)
	}
	return v * mult, nil
}
