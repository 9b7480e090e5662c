package agent

import (
	"context"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
)

// Reenroll enrolls again with the install parameters updated by args, and on
// success restarts the agent with the new identity. The enrollment runs first,
// while the agent keeps running: a rejected token changes nothing. The
// restart runs in the background (the caller is usually the control API,
// which the restart replaces); Start and Close wait for it.
func (a *Agent) Reenroll(ctx context.Context, args []string) (*enroll.Identity, error) {
	install, err := a.cfg.Params.Update(args)
	if err != nil {
		return nil, err
	}
	eff, _, err := enroll.MergeParams(install, a.mdmSettings(), a.mdm.Source().Path())
	if err != nil {
		return nil, err
	}
	id, err := a.enrollAs(ctx, a.whom(), eff)
	if err != nil {
		return nil, err
	}
	a.lifeMu.Lock() // held until the restart is done
	go func() {
		defer a.lifeMu.Unlock()
		a.restartAs(install, id)
	}()
	return id, nil
}

// restartAs restarts the agent as a new enrollment: new install parameters
// and identity, and no cached config (it belonged to the old enrollment).
// lifeMu is held.
func (a *Agent) restartAs(install enroll.Params, id *enroll.Identity) {
	a.log.Info("enrolled again; restarting", zap.String("tenant", id.Tenant), zap.String("user", id.User), zap.String("device", id.DeviceID))
	a.restartLocked("enrolled again", func() {
		a.cfg.Params = install
		if err := enroll.SaveParams(a.cfg.StateDir, install); err != nil {
			a.log.Error("save install parameters", zap.Error(err))
		}
		if err := id.Save(a.whom().dir); err != nil {
			a.log.Error("save the new identity; the old one stays", zap.Error(err))
		}
		os.Remove(filepath.Join(a.whom().dir, configFile))
		a.eff.mu.Lock()
		a.eff.settings = nil // recomputed from the new install parameters
		a.eff.mu.Unlock()
	})
}

// mdmSettings returns the MDM settings in force (the last good ones).
func (a *Agent) mdmSettings() map[string]string {
	m, _, err := a.mdm.Poll()
	if err != nil {
		a.log.Warn("MDM configuration is invalid; using the last good settings", zap.Error(err))
	}
	return m
}
