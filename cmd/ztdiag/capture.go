package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
)

const captureUsage = `usage: ztdiag -c start [-o FILE.pcap] [-s SNAPLEN] [--json]
       ztdiag -c stop [--json]
capture the packets the agent reads from and writes to its TUN device into a
pcap file (raw IP, readable by tcpdump -r), written by the agent: owned by
root, mode 0600, at most 100 MB (the capture ends there). With no -o, the
agent picks a file in its state directory; -s cuts each packet to SNAPLEN
bytes (default 65535). Root only.
flags:
`

const uplinkCaptureUsage = `usage: ztdiag -p start [-o FILE.pcap] [-s SNAPLEN] [--json]
       ztdiag -p stop [--json]
capture the packets of the agent's own connections on the uplink (to the
PoPs, the L3E gateway, the tenant API, the DNS upstreams, the probes) into a
pcap file (raw IP, readable by tcpdump -r), written by the agent: owned by
root, mode 0600, at most 100 MB (the capture ends there). Other
applications' packets are left out, except those to the very same address,
port and protocol as one of the agent's. Linux, macOS and Windows; root
(administrator) only.
flags:
`

// captureOptions are -c's and -p's: the file (-o) and the snapshot length
// (-s).
type captureOptions struct {
	file    string
	snaplen int
	// uplink: -p, the uplink capture; else -c, the TUN's.
	uplink bool
}

// cmdCapture is nsdiag's -c, and -p with o.uplink.
func cmdCapture(ctx context.Context, e *env, action string, o captureOptions, args []string) error {
	flag, usage, label, do := "-c", captureUsage, "Capture", e.c.Capture
	if o.uplink {
		flag, usage, label, do = "-p", uplinkCaptureUsage, "Uplink Capture", e.c.UplinkCapture
	}
	if err := e.noArgs(flag, usage, args); err != nil {
		return err
	}
	req := ctlapi.CaptureRequest{Action: strings.ToLower(action)}
	switch req.Action {
	case ctlapi.CaptureStart:
		if o.file != "" {
			abs, err := filepath.Abs(o.file) // the agent's working directory is not ours
			if err != nil {
				return cli.Usage(fmt.Errorf("-o: %w", err))
			}
			req.File = abs
		}
		if o.snaplen < 0 {
			return cli.Usagef("-s %d: want a positive snapshot length", o.snaplen)
		}
		req.Snaplen = o.snaplen
	case ctlapi.CaptureStop:
		if o.file != "" || o.snaplen != 0 {
			return cli.Usagef("%s stop takes no -o or -s", flag)
		}
	default:
		return cli.Usagef("%s %q: want start or stop", flag, action)
	}
	st, err := do(ctx, req)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(st)
	}
	fmt.Fprintf(e.out, "%s:: %s.\n", label, captureLine(st))
	return nil
}

// captureLine says whether a capture runs, where, and what it holds.
func captureLine(st ctlapi.CaptureStatus) string {
	held := fmt.Sprintf("%d packets, %d bytes", st.Packets, st.Bytes)
	if st.Dropped > 0 {
		held += fmt.Sprintf(", %d dropped (the writer fell behind)", st.Dropped)
	}
	if st.Running {
		if st.Interface != "" {
			held = "on " + st.Interface + "; " + held
		}
		return fmt.Sprintf("Running since %s into %s (snaplen %d, cap %d MB; %s)",
			st.Started.Local().Format(time.TimeOnly), st.File, st.Snaplen, st.MaxBytes>>20, held)
	}
	return fmt.Sprintf("Ended (%s) %s: %s (%s)", st.Ending, st.Ended.Local().Format(time.TimeOnly), st.File, held)
}
