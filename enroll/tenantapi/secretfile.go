package tenantapi

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Secrets on a command line — the org key, the enrollment tokens, an
// invitation's user key, a publisher's registration token — are visible to
// every local user (ps, /proc/PID/cmdline, a process list in a support
// bundle). Both binaries therefore accept every secret parameter in three
// forms, the same way:
//
//	token=VALUE          the secret itself: works, and is visible in ps
//	token=@PATH          read from the file at PATH (this file)
//	ZTAGENT_TOKEN=VALUE  from the environment (each binary names its variables)
//
// A secret that really begins with '@' is given in a file.

// maxSecretFile bounds what ReadSecretFile reads; secrets are short.
const maxSecretFile = 4 << 10

// ReadSecret resolves the value given for a secret parameter: "@PATH" is read
// from that file with ReadSecretFile, anything else is the secret itself.
func ReadSecret(value string) (Secret, error) {
	path, ok := strings.CutPrefix(value, "@")
	if !ok {
		return Secret(value), nil
	}
	return ReadSecretFile(path)
}

// ReadSecretFile reads a secret from the file at path: one line, surrounding
// white space and a final newline removed. The file must not be readable by
// every user (on Windows, where modes do not say so, protect it with an ACL):
// a secret others can read is refused rather than used. Errors name the path
// and the fix, never the content.
func ReadSecretFile(path string) (Secret, error) {
	if path == "" {
		return "", errors.New(`"@" must be followed by the path of a file holding the secret`)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	if everyoneCanRead(st) {
		return "", fmt.Errorf("secret file %s is readable by every user (mode %04o): chmod o-r %s (e.g. 600), or anyone on this machine can read the secret",
			path, st.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("secret file %s: %w", path, err)
	case len(data) > maxSecretFile:
		return "", fmt.Errorf("secret file %s is larger than %d bytes: it should hold one secret on one line", path, maxSecretFile)
	}
	s := strings.TrimSpace(string(data))
	switch {
	case s == "":
		return "", fmt.Errorf("secret file %s is empty", path)
	case strings.ContainsAny(s, "\r\n"):
		return "", fmt.Errorf("secret file %s holds more than one line: it should hold one secret on one line", path)
	}
	return Secret(s), nil
}
