package enroll

import (
	"fmt"
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// SecretEnvVar is the environment variable that may carry the secret
// parameter key on a command line: ZTAGENT_TOKEN, ZTAGENT_ENROLLAUTHTOKEN,
// ZTAGENT_ENROLLENCRYPTIONTOKEN, ZTAGENT_USERKEY.
func SecretEnvVar(key string) string { return "ZTAGENT_" + strings.ToUpper(key) }

// SecretParamKeys lists the parameters that hold secrets, in parameter order.
func SecretParamKeys() []string {
	var ks []string
	for _, k := range paramOrder {
		if secretParams[k] {
			ks = append(ks, k)
		}
	}
	return ks
}

// ParseCommandLine is ParseParams for the key=value parameters of a command
// line (`ztagent install|run`), with the two ways of keeping a secret out of
// the process list (see tenantapi.ReadSecret): a secret parameter's value may
// be @PATH, read from that file, which other users must not be able to read;
// and a secret parameter not on the command line is taken from its
// environment variable (SecretEnvVar, read with getenv), whose value may be
// @PATH too. The environment only completes a command line: with no
// parameters at all it is not read, so that a service started without any
// runs with what was installed. The plain key=VALUE form still works.
func ParseCommandLine(args []string, getenv func(string) string) (Params, error) {
	if len(args) == 0 {
		return Params{}, nil
	}
	out := make([]string, 0, len(args)+len(secretParams))
	given := map[string]bool{}
	for _, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		given[key] = true
		if ok && secretParams[key] && strings.HasPrefix(strings.TrimSpace(v), "@") {
			s, err := tenantapi.ReadSecret(strings.TrimSpace(v))
			if err != nil {
				return Params{}, fmt.Errorf("parameter %s=: %w", key, err)
			}
			arg = key + "=" + string(s)
		}
		out = append(out, arg)
	}
	for _, key := range SecretParamKeys() {
		env := SecretEnvVar(key)
		v := getenv(env)
		if given[key] || v == "" {
			continue
		}
		s, err := tenantapi.ReadSecret(v)
		if err != nil {
			return Params{}, fmt.Errorf("%s: %w", env, err)
		}
		out = append(out, key+"="+string(s))
	}
	return ParseParams(out)
}
