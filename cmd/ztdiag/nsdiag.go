package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// keyValue is one line of `ztdiag -f`, "Key:: Value.".
type keyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// cmdStatusLines is nsdiag's -f: the status as "Key:: Value." lines, in the
// order and with the names administrators grep for. What the agent does not
// do is shown as such, never as if it were in force.
func cmdStatusLines(ctx context.Context, e *env, args []string) error {
	if err := e.noArgs("-f", "usage: ztdiag -f [--json]\nstatus as \"Key:: Value.\" lines\nflags:\n", args); err != nil {
		return err
	}
	st, err := e.c.Status(ctx)
	if err != nil {
		return err
	}
	lines := statusLines(st)
	if e.json {
		return e.printJSON(lines)
	}
	for _, l := range lines {
		fmt.Fprintf(e.out, "%s:: %s.\n", l.Key, strings.TrimSuffix(l.Value, "."))
	}
	return nil
}

func statusLines(st ctlapi.Status) []keyValue {
	en := st.Enrollment
	steer := fmt.Sprintf("%d apps, from %s", len(st.Apps), orDash(st.Config.Source))
	if st.Config.ETag != "" {
		steer += ", etag " + st.Config.ETag
	}
	updated := "never"
	if !st.Config.Fetched.IsZero() {
		updated = st.Config.Fetched.UTC().Format(time.RFC3339)
	}
	return []keyValue{
		{"Tunnel status", tunnelState(st)},
		{"Client status", clientState(st)},
		{"NPA status", npaState(st)},
		{"Gateway", orDash(st.Tunnel.PoP)},
		{"OnPremDetection", onPremState(st.Network)},
		{"Captive Portal", captiveState(st.Network)},
		{"Tunnel Protocol", tunnelProtocol(st)},
		{"Tenant", orDash(en.Tenant)},
		{"Tenant URL", orDash(en.TenantURL)},
		{"Email", orDash(en.User)},
		{"Device ID", orDash(en.DeviceID)},
		{"Steering Config", steer},
		{"Config Updated", updated},
		{"DNS", orDash(st.DNS.Mode)},
		{"Tamper Protection", tamperRule(st.Steering)},
		{"Log Level", logLevel(st.Log)},
		{"Capture", captureState(st.Capture)},
		{"Uplink Capture", captureState(st.UplinkCapture)},
	}
}

func captureState(c *ctlapi.CaptureStatus) string {
	if c == nil {
		return "None"
	}
	return captureLine(*c)
}

// onPremState is on-premises detection's verdict and its reason; the reason
// is empty exactly when detection is off.
func onPremState(n ctlapi.NetworkStatus) string {
	switch {
	case n.OnPremReason == "":
		return "Off (not configured)"
	case n.OnPrem:
		return "On premises (" + n.OnPremReason + ")"
	}
	return "Off premises (" + n.OnPremReason + ")"
}

func captiveState(n ctlapi.NetworkStatus) string {
	if n.Captive {
		return "Detected (" + n.CaptiveReason + ")"
	}
	return "None"
}

// tunnelProtocol names the tunnels in use: L7 always, L3E when the tenant
// turned it on for this device.
func tunnelProtocol(st ctlapi.Status) string {
	s := "L7 (HTTP/2 over TLS)"
	if l := st.L3E; l != nil {
		s += ", L3E (DTLS 1.2 to " + orDash(l.Gateway) + ", " + orDash(l.State) + ")"
	}
	return s
}

func tamperRule(sw *ctlapi.SteeringStatus) string {
	if sw == nil {
		return "-"
	}
	if sw.Password || sw.Codes {
		return "On: " + sw.Rule
	}
	return "Off: " + sw.Rule
}

// offUntil says when steering turned off with an override code comes on
// again; "" when it is off until enabled.
func offUntil(sw *ctlapi.SteeringStatus) string {
	if sw.Until.IsZero() {
		return ""
	}
	return ", until " + sw.Until.Local().Format(time.RFC3339) + " when the override code expires"
}

func logLevel(ls *ctlapi.LogStatus) string {
	switch {
	case ls == nil:
		return "-"
	case ls.File == "":
		return ls.Level + " (standard error only)"
	}
	return fmt.Sprintf("%s (%s, rotated at %d MB, %d kept)", ls.Level, ls.File, ls.MaxMB, ls.Keep)
}

// tunnelState is the tunnel's state, or the agent's when it is not running.
func tunnelState(st ctlapi.Status) string {
	if st.State != ctlapi.StateRunning && st.State != ctlapi.StateSuspended {
		return "Down (agent " + string(st.State) + ")"
	}
	return orDash(st.Tunnel.State)
}

func clientState(st ctlapi.Status) string {
	if sw := st.Steering; sw != nil && !sw.On {
		return "Disabled (steering turned off by an administrator " + ago(sw.Since) + offUntil(sw) + ")"
	}
	switch st.State {
	case ctlapi.StateRunning:
		return "Enabled"
	case ctlapi.StateSuspended:
		return "Suspended (private access is off until the user signs in again)"
	}
	s := "Not running (" + string(st.State) + ")"
	if st.Error != "" {
		s += ": " + st.Error
	}
	return s
}

// npaState is private access as nsdiag -n says it: Connected only while
// the agent runs and its tunnel is up.
func npaState(st ctlapi.Status) string {
	switch {
	case st.Steering != nil && !st.Steering.On:
		return "Disabled (steering is off)"
	case st.State == ctlapi.StateSuspended:
		return "Disabled (re-authentication overdue)"
	case st.State == ctlapi.StateRunning && st.Tunnel.State == "connected":
		return "Connected"
	case st.State == ctlapi.StateRunning && st.Tunnel.State == "connecting":
		return "Connecting"
	}
	return "Disconnected"
}

// cmdNPA is nsdiag's -n.
func cmdNPA(ctx context.Context, e *env, args []string) error {
	if err := e.noArgs("-n", "usage: ztdiag -n [--json]\nprivate-access status\nflags:\n", args); err != nil {
		return err
	}
	st, err := e.c.Status(ctx)
	if err != nil {
		return err
	}
	s := npaState(st)
	if e.json {
		return e.printJSON(map[string]string{"npa_status": s, "tunnel": st.Tunnel.State, "pop": st.Tunnel.PoP, "last_error": st.Tunnel.LastError})
	}
	fmt.Fprintf(e.out, "NPA status is %s.\n", s)
	return nil
}

// cmdVersion is -v: ztdiag's version, and the agent's when it runs.
func cmdVersion(_ context.Context, e *env, args []string) error {
	if err := e.noArgs("-v", "usage: ztdiag -v [--json]\nprint the version\nflags:\n", args); err != nil {
		return err
	}
	if e.json {
		return e.printJSON(map[string]string{"version": version, "os": runtime.GOOS, "arch": runtime.GOARCH})
	}
	fmt.Fprintf(e.out, "ztdiag %s (%s/%s)\n", version, runtime.GOOS, runtime.GOARCH)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
