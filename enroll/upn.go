package enroll

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
)

// UPNFor is the UPN to enroll for the OS user login (a platform.Session's
// User): upn= when set; the login itself when it is already user@domain; else
// the login's user name at domain=. A Windows "DOMAIN\user" login keeps only
// the user name. Without upn= or domain= a bare login has no UPN, which is an
// *Error saying so.
func UPNFor(login string, p Params) (string, error) {
	if p.UPN != "" {
		return p.UPN, nil
	}
	name := login
	if i := strings.LastIndexByte(name, '\\'); i >= 0 {
		name = name[i+1:]
	}
	if strings.Contains(name, "@") {
		if _, err := checkUPNParam(name); err == nil {
			return name, nil
		}
	}
	if p.Domain == "" {
		return "", errorf(ReasonBadParameter, nil,
			"cannot tell the UPN of OS user %q: pass domain=<the users' domain> or upn=", truncate(login))
	}
	upn := strings.ToLower(name) + "@" + p.Domain
	if _, err := checkUPNParam(upn); err != nil || name == "" {
		return "", errorf(ReasonBadParameter, err, "OS user %q does not make a UPN at domain=%s: pass upn=", truncate(login), p.Domain)
	}
	return upn, nil
}

// UserStateDir is where mode=peruserconfig keeps one user's identity and
// config: stateDir/users/<id>, where id is the UPN's SHA-256 prefix, so that
// no UPN can name a path outside the state directory or collide by case.
func UserStateDir(stateDir, upn string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(upn)))
	return filepath.Join(stateDir, "users", hex.EncodeToString(sum[:12]))
}
