package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kardianos/service"
	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform"
)

// installService registers the service and starts it. Installing again (a
// package upgrade, a repair, new parameters) replaces the registration, so
// that the service runs the binary and flags given now, and restarts it:
// every package's post-install step may run it any number of times.
func installService(svc service.Service) error {
	if err := uninstallService(svc); err != nil {
		return fmt.Errorf("replace the service registration: %w", err)
	}
	if err := svc.Install(); err != nil {
		return fmt.Errorf("register the service: %w", err)
	}
	if err := svc.Start(); err != nil {
		return fmt.Errorf("start the service: %w", err)
	}
	return nil
}

// uninstallService stops the service and removes its registration; a service
// that is not registered is not an error.
func uninstallService(svc service.Service) error {
	svc.Stop() // not running, or not registered, is fine
	err := svc.Uninstall()
	if service.Platform() == "unix-systemv" {
		// kardianos/service links the init script into /etc/rc?.d at
		// install but leaves the links at uninstall.
		removeSysVLinks("/", serviceName)
	}
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, serr := svc.Status(); errors.Is(serr, service.ErrNotInstalled) {
		return nil
	}
	return err
}

// removeSysVLinks removes the /etc/rc?.d links under root to the init
// script of name, and no other file.
func removeSysVLinks(root, name string) {
	script := "/etc/init.d/" + name
	links, _ := filepath.Glob(filepath.Join(root, "etc", "rc[0-6S].d", "[SK][0-9][0-9]"+name))
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && target == script {
			os.Remove(l)
		}
	}
}

// restoreResolver puts the OS resolver back as it was before the agent
// changed it. The agent restores it when it stops; this repairs what a
// crashed or killed agent left (the journal in the state directory), so that
// uninstalling never leaves the machine pointing at a resolver that is gone.
func restoreResolver(stateDir string, log *zap.Logger) error {
	dns, err := platform.NewDNSConfigurator(stateDir, log)
	if err != nil {
		return fmt.Errorf("restore the OS resolver: %w", err)
	}
	if err := dns.Restore(); err != nil {
		return fmt.Errorf("restore the OS resolver: %w", err)
	}
	return nil
}

// restoreRoutes removes the routes and addresses a crashed or killed agent
// left, as its journal in the state directory records them (NewRouter
// repairs; nothing is added).
func restoreRoutes(stateDir string, log *zap.Logger) error {
	r, err := platform.NewRouter(stateDir, log)
	if err != nil {
		return fmt.Errorf("remove the agent's routes: %w", err)
	}
	return r.Close()
}
