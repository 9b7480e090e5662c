package main

import (
	"fmt"
	"github.com/ztagent/ztagent/cmd/internal/cli"
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// secretKeys are the agent's secret install parameters (enroll.SecretParamKeys,
// which ztdiag does not link; a test keeps the two lists equal).
var secretKeys = map[string]bool{"token": true, "enrollauthtoken": true, "enrollencryptiontoken": true, "userkey": true}

// readSecretArgs reads, here and as the user running ztdiag, the secrets of
// `ztdiag -e` given as key=@FILE (tenantapi.ReadSecret), so that the token is
// neither in the process list nor read by the daemon from a path it was sent.
func readSecretArgs(args []string) ([]string, error) {
	out := make([]string, len(args))
	for i, arg := range args {
		out[i] = arg
		k, v, ok := strings.Cut(arg, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		if !ok || !secretKeys[key] || !strings.HasPrefix(strings.TrimSpace(v), "@") {
			continue
		}
		s, err := tenantapi.ReadSecret(strings.TrimSpace(v))
		if err != nil {
			return nil, cli.Usage(fmt.Errorf("parameter %s=: %w", key, err))
		}
		out[i] = key + "=" + string(s)
	}
	return out, nil
}
