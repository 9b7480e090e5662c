package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// printL3E prints the L3E tunnel's lines of `ztdiag status`; nothing when
// the config leaves L3E off.
func printL3E(w io.Writer, l *ctlapi.L3EStatus) {
	if l == nil {
		return
	}
	fmt.Fprintf(w, "L3E:\t%s to %s (since %s), TUN %s %s, MTU %d\n", l.State, l.Gateway, ago(l.Since), l.TUN, l.Address, l.MTU)
	if l.LastError != "" {
		fmt.Fprintf(w, "L3E error:\t%s\n", l.LastError)
	}
	if l.Suffix != "" || len(l.DNS) > 0 {
		fmt.Fprintf(w, "L3E DNS:\t%s via %s\n", l.Suffix, join(l.DNS))
	}
	if l.DDNS != "" {
		fmt.Fprintf(w, "L3E DDNS:\t%s\n", l.DDNS)
	}
	for _, r := range l.Routes {
		var what []string
		if r.TCP != "" {
			what = append(what, "tcp "+r.TCP)
		}
		if r.UDP != "" {
			what = append(what, "udp "+r.UDP)
		}
		if r.ICMP {
			what = append(what, "icmp")
		}
		fmt.Fprintf(w, "  L3E route\t%s\t%s\t%s\n", r.Prefix, strings.Join(what, "; "), r.App)
	}
	var drops []string
	for _, k := range slices.Sorted(maps.Keys(l.Drops)) {
		if l.Drops[k] > 0 {
			drops = append(drops, fmt.Sprintf("%d %s", l.Drops[k], k))
		}
	}
	if len(drops) == 0 {
		drops = []string{"none"}
	}
	fmt.Fprintf(w, "L3E packets:\t%d in (%d bytes), %d out (%d bytes); dropped: %s\n",
		l.PacketsIn, l.BytesIn, l.PacketsOut, l.BytesOut, strings.Join(drops, ", "))
	fmt.Fprintf(w, "L3E records:\t%d re-keys, %d losses, %d templates refused, %d truncated, %d replayed, %d forged, %d of another epoch\n",
		l.Rekeys, l.Losses, l.TemplatesRefused, l.Truncated, l.Replayed, l.Forged, l.WrongEpoch)
}
