package steering

import (
	"fmt"
	"strings"
)

// Explain renders a decision as one paragraph for administrators (ztdiag match):
// what happens, which rule decided, why, and the app it belongs to.
func Explain(d Decision) string {
	var b strings.Builder
	switch d.Action {
	case L7:
		b.WriteString("Steered through the L7 tunnel (TLS + HTTP/2 to the PoP)")
	case L3E:
		b.WriteString("Steered through the L3E tunnel (DTLS to the SASE gateway)")
	case Block:
		b.WriteString("Blocked")
	default:
		b.WriteString("Goes direct (not steered)")
	}
	if d.App != nil {
		if d.Steered() {
			fmt.Fprintf(&b, " to app %s", describeApp(d.App))
		} else {
			fmt.Fprintf(&b, " instead of to app %s", describeApp(d.App))
		}
	}
	if d.Rule != "" {
		fmt.Fprintf(&b, ", decided by %s", d.Rule)
	}
	if d.Reason != "" {
		b.WriteString(": ")
		b.WriteString(d.Reason)
	}
	b.WriteString(".")
	if d.App != nil && d.Steered() {
		if d.App.PublisherDNS {
			b.WriteString(" Its names resolve to real addresses through a publisher.")
		}
		if len(d.App.Publishers) > 0 {
			fmt.Fprintf(&b, " Publishers: %s.", strings.Join(d.App.Publishers, ", "))
		}
	}
	return b.String()
}

func describeApp(a *App) string {
	var b strings.Builder
	if a.Name != "" && a.Name != a.ID {
		fmt.Fprintf(&b, "%q (id %s", a.Name, a.ID)
	} else {
		fmt.Fprintf(&b, "%s (", a.ID)
	}
	sep := ""
	if b.String()[b.Len()-1] != '(' {
		sep = "; "
	}
	fmt.Fprintf(&b, "%stcp %s; udp %s)", sep, portsOrNone(a.TCP), portsOrNone(a.UDP))
	return b.String()
}

func portsOrNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "none"
	}
	return s
}
