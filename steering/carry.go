package steering

// What the agent can carry. The config may steer flows through the L3E tunnel
// before the agent has one; such a flow must be refused (RST, ICMP
// unreachable), never sent direct: private traffic must not leave the device
// unencrypted because the agent lacks a feature. (TCP and UDP through the L7
// tunnel are carried.)
// These functions are pure so that the data path, `ztdiag status` and
// `ztdiag match` (live or against a file) say the same thing.

// Why a steered flow is not carried.
const (
	ReasonL3ENotSupported = "the L3E tunnel is not supported yet"
)

// NotCarried returns why the agent cannot carry a flow that d steers, or ""
// when it can (or d does not steer the flow).
func NotCarried(d Decision) string {
	if d.Action == L3E {
		return ReasonL3ENotSupported
	}
	return ""
}

// AppNotCarried says which of app's flows the agent refuses because it cannot
// carry them yet, and why; "" when it carries them all.
func AppNotCarried(app *App) string {
	if app.Tunnel == TunnelL3E {
		return "all flows: " + ReasonL3ENotSupported
	}
	return ""
}
