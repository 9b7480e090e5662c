package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

const statusUsage = `usage: ztdiag status [--json]
enrollment, settings, config, tunnel, TUN, DNS, flows, apps and stub addresses
flags:
`

func cmdStatus(ctx context.Context, e *env, args []string) error {
	if err := e.noArgs("status", statusUsage, args); err != nil {
		return err
	}
	st, err := e.c.Status(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(st)
	}
	printStatus(e.out, st)
	return nil
}

func printStatus(out io.Writer, st ctlapi.Status) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "Agent:\t%s (since %s)\n", st.State, ago(st.Since))
	if st.State == ctlapi.StateSuspended {
		fmt.Fprintf(w, "\tprivate access is off until the user signs in again\n")
	}
	if st.Error != "" {
		fmt.Fprintf(w, "Error:\t%s\n", st.Error)
	}
	e := st.Enrollment
	fmt.Fprintf(w, "Tenant:\t%s (%s)\n", e.Tenant, e.TenantURL)
	if e.As != "" && e.As != "machine" {
		fmt.Fprintf(w, "User:\t%s (%s identity)\n", e.User, e.As)
	} else {
		fmt.Fprintf(w, "User:\t%s\n", e.User)
	}
	fmt.Fprintf(w, "Device:\t%s\n", e.DeviceID)
	fmt.Fprintf(w, "Log:\t%s\n", logLevel(st.Log))
	if sw := st.Steering; sw != nil {
		state := "on"
		if !sw.On {
			state = "OFF, turned off by an administrator " + ago(sw.Since) + offUntil(sw)
		}
		fmt.Fprintf(w, "Steering:\t%s; %s\n", state, sw.Rule)
	}
	if c := st.Capture; c != nil {
		fmt.Fprintf(w, "Capture:\t%s\n", captureLine(*c))
	}
	if c := st.UplinkCapture; c != nil {
		fmt.Fprintf(w, "Uplink capture:\t%s\n", captureLine(*c))
	}
	etag := st.Config.ETag
	if etag == "" {
		etag = "- (the enrollment's initial config)"
	}
	fmt.Fprintf(w, "Config:\tfrom %s, etag %s, fetched %s\n", st.Config.Source, etag, ago(st.Config.Fetched))
	if r := st.Reauth; r.Phase != "" && r.Phase != "off" {
		fmt.Fprintf(w, "Re-auth:\t%s, last sign-in %s, next due %s\n", r.Phase, ago(r.LastSignIn), r.Due.Format(time.RFC3339))
	}
	t := st.Tunnel
	fmt.Fprintf(w, "Tunnel:\t%s to %s (since %s), %d streams open\n", t.State, t.PoP, ago(t.Since), t.Streams)
	if t.LastError != "" {
		fmt.Fprintf(w, "Tunnel error:\t%s\n", t.LastError)
	}
	printPoPs(w, t.PoPs)
	printL3E(w, st.L3E)
	sel := st.Selection
	fmt.Fprintf(w, "Publishers:\tmeasured %s, every %s; %d probes failed\n", ago(sel.Probed), sel.Interval, sel.ProbeFailures)
	fmt.Fprintf(w, "TUN:\t%s %s, routes %s\n", st.TUN.Name, st.TUN.Addr, join(st.TUN.Routes))
	fmt.Fprintf(w, "DNS:\t%s on %s, upstreams %s\n", st.DNS.Mode, join(st.DNS.Listen), join(st.DNS.Upstreams))
	c := st.DNS.Counters
	fmt.Fprintf(w, "DNS counts:\t%d queries: %d local, %d forwarded (%d from the cache), %d through publishers; %d upstream errors, %d SERVFAIL, %d refused as too many in flight, %d malformed, %d upstream sockets closed early\n",
		c.Queries, c.Local, c.Forwarded, c.CacheHits, c.Delegated, c.UpstreamErrors, c.ServFail, c.Saturated, c.Malformed, c.SocketsEvicted)
	f := st.Flows
	fmt.Fprintf(w, "Flows:\t%d steered, %d refused, %d not carried, %d not steered, %d blocked; %d SYNs dropped (too many connects at once)\n",
		f.Steered, f.Refused, f.NotCarried, f.NotSteered, f.Blocked, f.SYNDropped)
	pg := f.Pings
	fmt.Fprintf(w, "Pings:\t%d carried, %d answered by the host, %d unanswered, %d refused, %d limited, %d not steered, %d unreadable\n",
		pg.Carried, pg.Answered, pg.Unanswered, pg.Refused, pg.Limited, pg.NotSteered, f.PingsDropped)
	fmt.Fprintf(w, "UDP flows:\t%d open, %d closed idle, %d evicted (flow table full); %d datagrams dropped\n",
		f.UDPOpen, f.UDPExpired, f.UDPEvicted, f.UDPDropped)
	w.Flush()
	fmt.Fprintf(out, "\nSettings:\n")
	for _, s := range st.Settings {
		switch {
		case s.Value != "" && s.Pending != "":
			fmt.Fprintf(w, "  %s\t%s\t(%s)\tPENDING: %s\n", s.Key, s.Value, s.Source, s.Pending)
		case s.Value != "":
			fmt.Fprintf(w, "  %s\t%s\t(%s)\n", s.Key, s.Value, s.Source)
		case s.Pending != "":
			fmt.Fprintf(w, "  %s\t-\t(%s)\tPENDING: %s\n", s.Key, s.Source, s.Pending)
		}
	}
	w.Flush()
	fmt.Fprintf(out, "\nApps (%d):\n", len(st.Apps))
	for _, a := range st.Apps {
		ports := []string{}
		if a.TCP != "" {
			ports = append(ports, "tcp "+a.TCP)
		}
		if a.UDP != "" {
			ports = append(ports, "udp "+a.UDP)
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", a.ID, strings.Join(a.Hosts, ","), strings.Join(ports, "; "), a.Tunnel)
		if a.NotCarried != "" {
			fmt.Fprintf(w, "  \tNOT CARRIED, refused: %s\n", a.NotCarried)
		}
		printPublishers(w, a.Publishers)
	}
	w.Flush()
	fmt.Fprintf(out, "\nStub addresses (%d):\n", len(st.Stubs))
	for _, s := range st.Stubs {
		fmt.Fprintf(w, "  %s\t%s\n", s.Addr, s.FQDN)
	}
}

func join[T fmt.Stringer](xs []T) string {
	if len(xs) == 0 {
		return "-"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
