package steering

import (
	"fmt"
	"net/netip"
	"strings"
)

// Protocol is an IP protocol number the matcher understands.
type Protocol uint8

// The protocols apps are defined for; values are IANA protocol numbers.
const (
	TCP Protocol = 6
	UDP Protocol = 17
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProtocol parses "tcp" or "udp" (any case).
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp or udp)", s)
}

// Action is what happens to a flow or a name.
type Action uint8

// Actions, in the order an explanation names them. The zero value is Direct, so a
// zero Decision means "not ours".
const (
	// Direct leaves the flow or name to the operating system.
	Direct Action = iota
	// L7 carries the flow in the L7 (TLS + HTTP/2) tunnel to the PoP.
	L7
	// L3E carries the flow in the L3E (DTLS) tunnel to the SASE gateway.
	L3E
	// Block refuses the flow (pinned-app exceptions with action "block").
	Block
)

func (a Action) String() string {
	switch a {
	case Direct:
		return "direct"
	case L7:
		return "l7"
	case L3E:
		return "l3e"
	case Block:
		return "block"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Decision is the matcher's answer for one name or flow.
type Decision struct {
	Action Action
	// App is the private app that decided, nil when no app did. The snapshot
	// makes it on the app's first decision and keeps it (lookups of an app in
	// use do not allocate); it must not be modified.
	App *App
	// Rule is the exact configuration element that decided, as a path and its
	// value, e.g. `apps[2].hosts[0] "*.corp.test"`; empty when nothing matched.
	Rule string
	// Reason says in a few words why that rule decided.
	Reason string
}

// Steered reports whether the decision sends the flow into a tunnel.
func (d Decision) Steered() bool { return d.Action == L7 || d.Action == L3E }

// Flow is what the data path knows about a flow when it asks for a decision.
type Flow struct {
	// Addr is the destination address: a stub address or a real one.
	Addr  netip.Addr
	Proto Protocol
	Port  uint16
	// FQDN is the name behind the address when the agent knows it: from the
	// stub pool's reverse lookup for stub addresses, or from the DNS proxy's
	// publisher-DNS answers for real ones; "" otherwise. A flow with an FQDN is
	// matched by name, one without by address.
	FQDN string
	// OS and the owner's identity, for pinned-app exceptions. Any may be empty
	// when the platform could not tell.
	OS, Process, Path, AppID string
}
