package platform

import (
	"context"
	"os/exec"
	"time"

	"go.uber.org/zap"
)

// NewDNSConfigurator returns the macOS resolver configurator: one
// /etc/resolver/<domain> file per private domain pointing at the agent
// (resolver(5)), so only those names reach it while every other name stays
// with the system's resolvers. DNSConfig.Domains must name them (Set returns
// ErrDomainsRequired otherwise). Files left by a crashed run are removed first.
func NewDNSConfigurator(stateDir string, log *zap.Logger) (DNSConfigurator, error) {
	return newResolverDirDNS(resolverDir, stateDir, log, scutilDNS)
}

func scutilDNS() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "/usr/sbin/scutil", "--dns").Output()
}
