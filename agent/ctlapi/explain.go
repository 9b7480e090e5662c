package ctlapi

import (
	"net/netip"

	"github.com/ztagent/ztagent/steering"
)

// StubNames maps a stub address back to the name it was handed out for
// (*steering.StubPool does).
type StubNames interface {
	Lookup(addr netip.Addr) (string, bool)
}

// Explain decides req against snap as the agent's data path would. A name is
// decided by name; a stub address is first mapped back to its name through
// stubs (nil when there are none, e.g. deciding against a file). A flow the
// config steers but the agent cannot carry yet is answered with ActionRefuse
// and the reason.
func Explain(snap *steering.Snapshot, stubs StubNames, req MatchRequest) MatchResponse {
	proto, err := steering.ParseProtocol(req.Proto)
	if err != nil {
		proto = steering.TCP
	}
	f := steering.Flow{Proto: proto, Port: req.Port, OS: req.OS, Process: req.Process, Path: req.Path, AppID: req.AppID}
	if addr, err := netip.ParseAddr(req.Host); err == nil {
		f.Addr = addr.Unmap()
		if stubs != nil && snap.IsStub(f.Addr) {
			f.FQDN, _ = stubs.Lookup(f.Addr)
		}
	} else {
		f.FQDN = req.Host
	}
	var d steering.Decision
	nameOnly := f.Port == 0 && f.FQDN != ""
	if nameOnly {
		d = snap.MatchName(f.FQDN)
	} else {
		d = snap.MatchFlow(f)
	}
	resp := MatchResponse{Action: d.Action.String(), Rule: d.Rule, Reason: d.Reason, Explain: steering.Explain(d)}
	if d.App != nil {
		resp.App = d.App.ID
	}
	switch why := steering.NotCarried(d); {
	case why != "" && (!nameOnly || d.Action == steering.L3E):
		resp.Steering, resp.Action, resp.Reason = resp.Action, ActionRefuse, why
		resp.Explain = "Refused: " + why + ", and the agent refuses a steered flow rather than send it unencrypted. " +
			"The config says: " + resp.Explain
	case nameOnly && d.App != nil && d.Steered():
		if nc := steering.AppNotCarried(d.App); nc != "" {
			resp.Explain += " Not carried, refused: " + nc + "."
		}
	}
	return resp
}
