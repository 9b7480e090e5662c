package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// printPoPs lists the PoPs when the tenant gives several: each one's last
// connect time (TCP and TLS handshake, about two round trips) and which is
// in use.
func printPoPs(w io.Writer, pops []ctlapi.PoPStatus) {
	if len(pops) < 2 {
		return
	}
	for _, p := range pops {
		use := ""
		if p.InUse {
			use = "  IN USE"
		}
		switch {
		case p.Error != "":
			fmt.Fprintf(w, "  PoP %s\tunreachable: %s%s\n", p.Addr, p.Error, use)
		case p.Connect > 0:
			fmt.Fprintf(w, "  PoP %s\tconnect %s%s\n", p.Addr, ms(p.Connect), use)
		default:
			fmt.Fprintf(w, "  PoP %s\tnot measured%s\n", p.Addr, use)
		}
	}
}

// printPublishers lists an app's publishers as the last probe round saw them:
// RTT through the PoP, its bucket, and whether the PoP uses it for this app.
func printPublishers(w io.Writer, pubs []ctlapi.PublisherStatus) {
	for _, p := range pubs {
		mark := ""
		if p.Selected {
			mark = "  SELECTED"
		}
		if p.Error != "" {
			fmt.Fprintf(w, "  \tpublisher %s\tunreachable: %s%s\n", p.Name, p.Error, mark)
			continue
		}
		fmt.Fprintf(w, "  \tpublisher %s\trtt %s (bucket %s)%s\n", p.Name, ms(p.RTT), p.Bucket, mark)
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}
