package agent

import (
	"context"

	"github.com/ztagent/ztagent/enroll"
)

// reenroll is `ztdiag -e`, run by a control-API handler of r: it enrolls
// again with the install parameters updated by args (none: the settings in
// force, which applies pending MDM changes), and on success hands the new
// enrollment to the supervisor, which saves it, answers, and restarts the
// agent as it. The enrollment runs first, while the agent keeps running: a
// rejected token changes nothing. When reenroll returns the identity, it is
// saved: a restart or a Close that races it cannot drop it, and the next
// start uses it. ctx (a handler's, which Close cancels) bounds the
// enrollment.
func (a *Agent) reenroll(ctx context.Context, r *run, args []string) (*enroll.Identity, error) {
	install, _, _ := a.settings.get()
	install, err := install.Update(args)
	if err != nil {
		return nil, err
	}
	eff, _, err := enroll.MergeParams(install, a.mdmSettings(), a.mdm.Source().Path())
	if err != nil {
		return nil, err
	}
	who := a.wantPrincipal(a.lastPrincipal())
	with := who.enrollParams(eff)
	id, err := a.enrollAs(ctx, who, with)
	if err != nil {
		return nil, err
	}
	// The enrollment is done at the tenant: from here on it is saved even
	// if Close has begun, so ctx no longer matters.
	reply := make(chan error, 1)
	q := request{kind: reqAdopt, why: "enrolled again", reply: reply,
		adopt: &adoption{who: who, install: &install, id: id, with: with}}
	r.reqs <- q // the supervisor takes requests until every control-API handler has returned
	if err := <-reply; err != nil {
		return nil, err
	}
	return id, nil
}
