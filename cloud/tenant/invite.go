package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
	"github.com/ztagent/ztagent/steering"
)

// Email invitations. An administrator invites a user by giving them a one-time
// user key — written in the tenant file (users[].user_key) or issued by the
// admin API — and the user installs the agent with host= and userkey=. The key
// enrolls exactly one device: the tenant records its SHA-256 as used, with the
// device id (the hash of the device's public key), in its state directory
// before it signs the certificate, so no other device and no tenant restart
// makes it usable again. The same device key may redeem it again: that is the
// agent retrying after the answer was lost on the way (devices.go), and it
// gets the same device. The state file holds only hashes.

const (
	invitationsFile    = "invitations.json"
	invitationsVersion = 1
	// Invitations issued by the API live this long by default, at most max.
	defaultInviteDays = 14
	maxInviteDays     = 90
	// maxIssuedInvites bounds the state file; expired entries are pruned first.
	maxIssuedInvites = 100000
)

// keyHash is how a user key is looked up and remembered.
func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// compileInvitations checks user keys, password hashes and the admin token, and
// indexes user keys by hash.
func (t *Tenant) compileInvitations(v *validator) {
	t.userKeys = map[string]*User{}
	for i := range t.Users {
		u := &t.Users[i]
		path := fmt.Sprintf("users[%d]", i)
		if u.UserKey != "" {
			h := keyHash(string(u.UserKey))
			switch {
			case len(u.UserKey) < minSecretLen:
				v.badf(path+".user_key", "too short: use at least %d random characters", minSecretLen)
			case t.userKeys[h] != nil:
				v.badf(path+".user_key", "same key as user %s: every invitation needs its own key", t.userKeys[h].UPN)
			default:
				t.userKeys[h] = u
			}
		}
		if u.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				v.badf(path+".password_hash", "not a bcrypt hash (%v): generate one with `htpasswd -nBC 12 user`", err)
			}
		}
	}
	if t.AdminToken != "" && len(t.AdminToken) < minSecretLen {
		v.badf("admin_token", "too short: use at least %d random characters", minSecretLen)
	}
	if t.TamperOverridePrivateKey != "" {
		pub, err := steering.TamperOverridePublicKey(string(t.TamperOverridePrivateKey))
		if err != nil {
			v.badf("tamper_override_private_key", "%v, as `ztdiag tamper-key` writes it", err)
		}
		t.overridePub = pub
		if err == nil && !slices.ContainsFunc(t.Steering, func(p SteeringProfile) bool { return p.Client.TamperOverrideKey == pub }) {
			v.warnf("tamper_override_private_key", "no steering profile sets its public key (%s) as client.tamper_override_key: no device takes its codes", pub)
		}
		if t.AdminToken == "" {
			v.warnf("tamper_override_private_key", "no admin_token: the admin API that issues its codes (POST /v1/admin/override-codes) is off")
		}
	}
}

// inviteState is invitations.json.
type inviteState struct {
	Version int            `json:"version"`
	Issued  []issuedInvite `json:"issued,omitempty"`
	Used    []usedInvite   `json:"used,omitempty"`
}

type issuedInvite struct {
	KeyHash string    `json:"key_sha256"`
	UPN     string    `json:"upn"`
	Expires time.Time `json:"expires"`
}

type usedInvite struct {
	KeyHash string    `json:"key_sha256"`
	UPN     string    `json:"upn"`
	Device  string    `json:"device_id"`
	At      time.Time `json:"at"`
}

// inviteStore is the persisted invitation state. Every change is written (atomic
// rename) before the call that made it returns; with no state directory it is
// kept in memory only, which the handler logs as a warning.
type inviteStore struct {
	mu      sync.Mutex
	path    string // "" = memory only
	loadErr error  // the state file could not be read: refuse, never guess
	st      inviteState
}

func openInviteStore(stateDir string) *inviteStore {
	s := &inviteStore{st: inviteState{Version: invitationsVersion}}
	if stateDir == "" {
		return s
	}
	s.path = filepath.Join(stateDir, invitationsFile)
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		s.loadErr = err
	default:
		s.st, s.loadErr = parseInviteState(data)
		if s.loadErr != nil {
			s.loadErr = fmt.Errorf("%s: %w (fix or restore it; deleting it makes used invitations reusable)", s.path, s.loadErr)
		}
	}
	return s
}

func parseInviteState(data []byte) (inviteState, error) {
	var st inviteState
	if err := tenantapi.DecodeStrict(strings.NewReader(string(data)), &st); err != nil {
		return inviteState{}, err
	}
	if st.Version != invitationsVersion {
		return inviteState{}, fmt.Errorf("version %d, want %d", st.Version, invitationsVersion)
	}
	for _, e := range append(slices.Clone(st.Used), usedFromIssued(st.Issued)...) {
		if b, err := hex.DecodeString(e.KeyHash); err != nil || len(b) != sha256.Size {
			return inviteState{}, errors.New("an entry has a malformed key_sha256")
		}
	}
	return st, nil
}

func usedFromIssued(is []issuedInvite) []usedInvite {
	out := make([]usedInvite, len(is))
	for i, e := range is {
		out[i] = usedInvite{KeyHash: e.KeyHash}
	}
	return out
}

// saveLocked persists the state; on failure the caller rolls back.
func (s *inviteStore) saveLocked() error {
	if s.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(&s.st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.path, data, 0o600)
}

var errInviteState = &tenantapi.Error{Status: http.StatusServiceUnavailable, Reason: tenantapi.ReasonInternal,
	Message: "tenant's invitation state is unreadable; the administrator must repair it"}

// redeem consumes key for deviceID at now and returns the invited user. It is
// the only way a key is used, and it persists the use before returning. A key
// already used by deviceID itself is redeemed again (a retry after a lost
// answer); used by any other device, it is refused.
func (s *inviteStore) redeem(t *Tenant, key, deviceID string, now time.Time) (*User, *tenantapi.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return nil, errInviteState
	}
	h := keyHash(key)
	if i := slices.IndexFunc(s.st.Used, func(u usedInvite) bool { return u.KeyHash == h }); i >= 0 {
		used := s.st.Used[i]
		if used.Device != deviceID {
			return nil, &tenantapi.Error{Status: http.StatusConflict, Reason: tenantapi.ReasonInvitationUsed,
				Message: "this invitation's user key was already used to enroll a device on " +
					used.At.UTC().Format(time.DateOnly)}
		}
		if user := t.User(used.UPN); user != nil {
			return user, nil
		}
		return nil, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonUnknownUser,
			Message: "the invited user is no longer a member of this tenant"}
	}
	user := t.userKeys[h]
	if user == nil {
		i := slices.IndexFunc(s.st.Issued, func(e issuedInvite) bool { return e.KeyHash == h })
		if i < 0 {
			return nil, &tenantapi.Error{Status: http.StatusUnauthorized, Reason: tenantapi.ReasonBadUserKey,
				Message: "user key is not an invitation of this tenant"}
		}
		if e := s.st.Issued[i]; !now.Before(e.Expires) {
			return nil, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonInvitationExpired,
				Message: "invitation expired on " + e.Expires.UTC().Format(time.DateOnly)}
		}
		if user = t.User(s.st.Issued[i].UPN); user == nil {
			return nil, &tenantapi.Error{Status: http.StatusForbidden, Reason: tenantapi.ReasonUnknownUser,
				Message: "the invited user is no longer a member of this tenant"}
		}
	}
	s.st.Used = append(s.st.Used, usedInvite{KeyHash: h, UPN: user.UPN, Device: deviceID, At: now.UTC()})
	if err := s.saveLocked(); err != nil {
		s.st.Used = s.st.Used[:len(s.st.Used)-1]
		return nil, &tenantapi.Error{Status: http.StatusInternalServerError, Reason: tenantapi.ReasonInternal,
			Message: "tenant could not record the invitation as used; retry later"}
	}
	return user, nil
}

// issue creates a new invitation for upn valid for days and returns its key.
func (s *inviteStore) issue(upn string, days int, now time.Time) (tenantapi.Secret, time.Time, *tenantapi.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return "", time.Time{}, errInviteState
	}
	// Expired invitations can never be redeemed; their used entries may go too.
	live := s.st.Issued[:0:0]
	for _, e := range s.st.Issued {
		if now.Before(e.Expires) {
			live = append(live, e)
		}
	}
	if len(live) >= maxIssuedInvites {
		return "", time.Time{}, &tenantapi.Error{Status: http.StatusInsufficientStorage, Reason: tenantapi.ReasonInternal,
			Message: "too many open invitations"}
	}
	key := newUserKey()
	exp := now.UTC().AddDate(0, 0, days)
	old := s.st.Issued
	s.st.Issued = append(live, issuedInvite{KeyHash: keyHash(string(key)), UPN: upn, Expires: exp})
	if err := s.saveLocked(); err != nil {
		s.st.Issued = old
		return "", time.Time{}, &tenantapi.Error{Status: http.StatusInternalServerError, Reason: tenantapi.ReasonInternal,
			Message: "tenant could not record the invitation; retry later"}
	}
	return key, exp, nil
}

// newUserKey is 160 random bits in lower-case base32: easy to copy from an
// email, impossible to guess.
func newUserKey() tenantapi.Secret {
	b := make([]byte, 20)
	rand.Read(b)
	return tenantapi.Secret(strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)))
}
